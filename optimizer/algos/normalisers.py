"""Running mean/std statistics for the per-critic value normalisers (MAPPO's "ValueNorm").

Each critic has its own :class:`RunningMeanStd` over its return targets: the user reward critic, the
user delay-cost critic, the deployment critic and the allocation critic (``agents.ValueNormalisers``);
the reward and cost critics never share one (the MAPPO-L reference code did). Critics predict
normalised values; :meth:`RunningMeanStd.denormalise` maps them back before GAE. There are no running
observation normalisers: the environment's observations are scaled where they are built.
"""

from __future__ import annotations

import torch


class RunningMeanStd:
    """Exact (Chan et al. parallel) running mean and variance over the leading dims, in float64."""

    def __init__(self, shape: tuple[int, ...] = (), epsilon: float = 1e-8, clip: float = 10.0,
                 device: str | torch.device = "cpu") -> None:
        self.mean = torch.zeros(shape, dtype=torch.float64, device=device)
        self.var = torch.ones(shape, dtype=torch.float64, device=device)
        self.count = 0.0
        self.epsilon = epsilon
        self.clip = clip

    def update(self, x: torch.Tensor) -> None:
        """Fold a batch (..., *shape) into the statistics."""
        flat = x.detach().double().reshape(-1, *self.mean.shape)
        if flat.shape[0] == 0:
            return
        batch_mean = flat.mean(0)
        batch_var = flat.var(0, unbiased=False)
        n = float(flat.shape[0])
        total = self.count + n
        delta = batch_mean - self.mean
        self.mean = self.mean + delta * n / total
        m2 = self.var * self.count + batch_var * n + delta.pow(2) * self.count * n / total
        self.var = m2 / total
        self.count = total

    @property
    def std(self) -> torch.Tensor:
        return (self.var + self.epsilon).sqrt()

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        if self.count == 0:
            return x
        out = (x.double() - self.mean) / self.std
        return out.clamp(-self.clip, self.clip).to(x.dtype)

    def denormalise(self, x: torch.Tensor) -> torch.Tensor:
        if self.count == 0:
            return x
        return (x.double() * self.std + self.mean).to(x.dtype)

    def state_dict(self) -> dict:
        return {"mean": self.mean.cpu(), "var": self.var.cpu(), "count": self.count}

    def load_state_dict(self, state: dict) -> None:
        self.mean = state["mean"].to(self.mean.device)
        self.var = state["var"].to(self.var.device)
        self.count = float(state["count"])
