"""PPO machinery shared by the three layers: clipped surrogate, value loss, minibatches, optimiser step.

The clipped surrogate (Schulman et al. 2017) for samples with advantage Â and ratio
ρ = exp(log π_new − log π_old):  L = −E[min(ρ Â, clip(ρ, 1 − ε, 1 + ε) Â)], ε = 0.2.
Every loss checks that its operands have the same shape (the published IPPO code broadcast a
(B, 1) value against a (B,) target into a (B, B) matrix).
"""

from __future__ import annotations

from typing import Iterator

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
    """PPO policy loss and diagnostics (approx. KL, clip fraction, mean |ρ − 1|)."""
    _same_shape(logp_new, logp_old, advantages)
    log_ratio = logp_new - logp_old
    ratio = log_ratio.exp()
    unclipped = ratio * advantages
    clipped = ratio.clamp(1.0 - clip, 1.0 + clip) * advantages
    loss = -weighted_mean(torch.min(unclipped, clipped), weight)
    with torch.no_grad():
        stats = {"approx_kl": weighted_mean((ratio - 1) - log_ratio, weight).item(),
                 "clip_frac": weighted_mean(((ratio - 1).abs() > clip).float(), weight).item(),
                 "ratio_dev": weighted_mean((ratio - 1).abs(), weight).item()}
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
