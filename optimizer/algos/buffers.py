"""Rollout storage (trajectories ξ^dep, ξ^usr, ξ^alloc of eq. 34–36), one :class:`Trajectory` per layer.

Each trajectory is filled from scratch every iteration (no sample of an earlier iteration can leak in,
unlike the published user buffer) and holds exactly what is needed to recompute the same masked
distribution at update time: inputs, masks, the actions taken, their log-probs and the critics' values
(raw units, for GAE). ``time`` (slots, or deployment decisions) is the first dimension, then the B env
copies, then the agents (users K or servers J).
"""

from __future__ import annotations

import torch


class Trajectory:
    """Named tensors (steps, ...) allocated at their first write; read as attributes."""

    def __init__(self, steps: int) -> None:
        self.steps = steps
        self.data: dict[str, torch.Tensor] = {}

    def put(self, t: int, **tensors: torch.Tensor) -> None:
        for name, value in tensors.items():
            if name not in self.data:
                self.data[name] = torch.zeros((self.steps, *value.shape), dtype=value.dtype, device=value.device)
            self.data[name][t] = value

    def add(self, t: int, name: str, value: torch.Tensor) -> None:
        """Accumulate into ``name`` at step t (a reward summed over the slots of a ΔT period)."""
        if name not in self.data:
            self.put(t, **{name: torch.zeros_like(value)})
        self.data[name][t] += value

    def __getattr__(self, name: str) -> torch.Tensor:
        data = self.__dict__.get("data", {})
        if name in data:
            return data[name]
        raise AttributeError(name)

    def flat(self, names: tuple[str, ...], leading: int) -> dict[str, torch.Tensor]:
        """The named fields with their first ``leading`` dims (time, copies, agents) merged."""
        return {name: self.data[name].reshape(-1, *self.data[name].shape[leading:]) for name in names}
