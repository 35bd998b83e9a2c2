"""PPO machinery shared by the three layers: clipped surrogate, value loss, minibatches, and the one
update routine (:func:`ppo_update`) every layer calls.

The clipped surrogate (Schulman et al. 2017) for samples with advantage Â and ratio
ρ = exp(log π_new − log π_old):  L = −E[min(ρ Â, clip(ρ, 1 − ε, 1 + ε) Â)], ε = 0.2.
Every loss checks that its operands have the same shape (the published IPPO code broadcast a
(B, 1) value against a (B,) target into a (B, B) matrix).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator

import torch
from torch import nn


def _same_shape(*tensors: torch.Tensor) -> None:
    shapes = {tuple(t.shape) for t in tensors}
    if len(shapes) != 1:
        raise ValueError(f"loss operands must share one shape, got {sorted(shapes)}")


def weighted_mean(x: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor:
    if weight is None:
        return x.mean()
    _same_shape(x, weight)
    return (x * weight).sum() / weight.sum().clamp(min=1.0)


def standardise(adv: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """Zero-mean, unit-std advantages (over the samples with weight > 0)."""
    if weight is None:
        return (adv - adv.mean()) / (adv.std(unbiased=False) + 1e-8)
    mean = weighted_mean(adv, weight)
    std = weighted_mean((adv - mean).pow(2), weight).sqrt()
    return (adv - mean) / (std + 1e-8)


def clipped_surrogate(logp_new: torch.Tensor, logp_old: torch.Tensor, advantages: torch.Tensor,
                      clip: float, weight: torch.Tensor | None = None) -> tuple[torch.Tensor, dict]:
    """PPO policy loss and diagnostics (approx. KL, clip fraction, mean |ρ − 1|) as 0-dim tensors: read
    them once per update (:class:`StatsLog`), not once per minibatch, so a GPU is not synchronised each step."""
    _same_shape(logp_new, logp_old, advantages)
    log_ratio = logp_new - logp_old
    ratio = log_ratio.exp()
    unclipped = ratio * advantages
    clipped = ratio.clamp(1.0 - clip, 1.0 + clip) * advantages
    loss = -weighted_mean(torch.min(unclipped, clipped), weight)
    with torch.no_grad():
        stats = {"approx_kl": weighted_mean((ratio - 1) - log_ratio, weight),
                 "clip_frac": weighted_mean(((ratio - 1).abs() > clip).float(), weight),
                 "ratio_dev": weighted_mean((ratio - 1).abs(), weight)}
    return loss, stats


def value_loss(predicted: torch.Tensor, target: torch.Tensor,
               weight: torch.Tensor | None = None) -> torch.Tensor:
    """Mean squared error of a critic (Algorithm 1 line 24), shapes checked."""
    _same_shape(predicted, target)
    return weighted_mean((predicted - target).pow(2), weight)


def minibatches(num_samples: int, num_minibatches: int, generator: torch.Generator,
                device: torch.device | str = "cpu") -> Iterator[torch.Tensor]:
    """Shuffled index batches covering every sample once."""
    order = torch.randperm(num_samples, generator=generator).to(device)
    size = -(-num_samples // max(1, min(num_minibatches, num_samples)))
    for start in range(0, num_samples, size):
        yield order[start:start + size]


def optimiser_step(optimiser: torch.optim.Optimizer, loss: torch.Tensor, params: list[nn.Parameter],
                   max_grad_norm: float) -> float:
    """Zero, backprop, clip the global gradient norm, step; returns the pre-clip norm."""
    optimiser.zero_grad(set_to_none=True)
    loss.backward()
    norm = nn.utils.clip_grad_norm_(params, max_grad_norm)
    optimiser.step()
    return float(norm)


@dataclass
class LayerOutput:
    """What a layer's networks give for a minibatch: log π and entropy (same shape as the stored
    log π, e.g. (n,) or per step (n, L)) and one prediction per critic target."""

    logp: torch.Tensor
    entropy: torch.Tensor
    values: dict[str, torch.Tensor]


@dataclass
class PPOSettings:
    epochs: int
    num_minibatches: int
    clip: float
    entropy_coef: float
    value_coef: float
    max_grad_norm: float


def ppo_update(samples: dict[str, torch.Tensor], forward: Callable[[dict[str, torch.Tensor]], LayerOutput],
               optimisers: list[tuple[torch.optim.Optimizer, list[nn.Parameter]]], settings: PPOSettings,
               generator: torch.Generator, prefix: str) -> dict[str, float]:
    """The PPO update of every layer (Algorithm 1 lines 20–24): epochs × shuffled minibatches of

        L = clipped surrogate(log π, logp_old, advantage; weight) − c_H · H + c_V · Σ_critics MSE(V, target)

    ``samples`` holds ``logp_old``, ``advantage``, optionally ``weight`` (same shape) and one
    ``target_<name>`` per critic, plus whatever ``forward`` reads; all share the first dimension.
    One backward pass, then each (optimiser, parameters) pair clips its own gradient norm and steps.
    """
    n = samples["logp_old"].shape[0]
    device = samples["logp_old"].device
    weight = samples.get("weight")
    log = StatsLog(prefix)
    for _ in range(settings.epochs):
        for idx in minibatches(n, settings.num_minibatches, generator, device):
            batch = {key: value[idx] for key, value in samples.items()}
            out = forward(batch)
            w = batch.get("weight") if weight is not None else None
            pg_loss, info = clipped_surrogate(out.logp, batch["logp_old"], batch["advantage"], settings.clip, w)
            entropy = weighted_mean(out.entropy, w)
            v_loss = sum(value_loss(pred, batch[f"target_{name}"]) for name, pred in out.values.items())
            loss = pg_loss - settings.entropy_coef * entropy + settings.value_coef * v_loss
            for optimiser, _ in optimisers:
                optimiser.zero_grad(set_to_none=True)
            loss.backward()
            for optimiser, params in optimisers:
                nn.utils.clip_grad_norm_(params, settings.max_grad_norm)
                optimiser.step()
            log.add(info, loss=pg_loss.detach(), value_loss=v_loss.detach(), entropy=entropy.detach())
    return log.summary()


class StatsLog:
    """Mean of per-minibatch diagnostics; keeps the first minibatch's ratio deviation (should be 0).
    Values are kept as tensors and read in one transfer by :meth:`summary` (one device sync per update)."""

    def __init__(self, prefix: str) -> None:
        self.prefix, self.rows = prefix, []

    def add(self, info: dict, **values: torch.Tensor) -> None:
        self.rows.append({**info, **values})

    def summary(self) -> dict[str, float]:
        if not self.rows:
            return {f"{self.prefix}_first_ratio_dev": float("nan")}      # NaN: no minibatch ran
        keys = list(self.rows[0])
        flat = torch.stack([row[k].double().reshape(()) for row in self.rows for k in keys]).tolist()   # exact
        sums = dict.fromkeys(keys, 0.0)
        for index, row in enumerate(self.rows):          # Python floats, summed in minibatch order
            for offset, key in enumerate(keys):
                sums[key] = sums[key] + flat[index * len(keys) + offset]
        out = {f"{self.prefix}_{k}": v / len(self.rows) for k, v in sums.items()}
        out[f"{self.prefix}_first_ratio_dev"] = flat[keys.index("ratio_dev")]
        return out
