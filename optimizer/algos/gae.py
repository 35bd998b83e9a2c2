"""Generalised advantage estimation (Schulman et al. 2016) with time-limit bootstrapping.

For each step t (any trailing agent dimensions):
    δ_t = r_t + γ (1 − d_t) V'_t − V_t
    Â_t = δ_t + γ λ (1 − e_t) Â_{t+1}
where V'_t is the value of the state actually reached after step t (``next_values``), d_t marks a true
termination (no future at all) and e_t marks the end of an episode, true or by time limit. At a
time-limit truncation e_t = 1 but d_t = 0: the trace stops, yet the value of the state reached is still
bootstrapped (eq. 31 uses this for deployment macro-steps, the user and allocation layers per slot).
Returns are Â + V (the critics' targets).
"""

from __future__ import annotations

import torch


def gae(rewards: torch.Tensor, values: torch.Tensor, next_values: torch.Tensor,
        episode_end: torch.Tensor, terminated: torch.Tensor, gamma: float,
        lam: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Advantages and returns, all tensors (T, ...) of the same shape."""
    shapes = {t.shape for t in (rewards, values, next_values, episode_end, terminated)}
    if len(shapes) != 1:
        raise ValueError(f"gae: all inputs must share one shape, got {sorted(map(tuple, shapes))}")
    advantages = torch.zeros_like(rewards)
    carry = torch.zeros_like(rewards[0])
    not_done = 1.0 - terminated.float()
    not_end = 1.0 - episode_end.float()
    for t in reversed(range(rewards.shape[0])):
        delta = rewards[t] + gamma * not_done[t] * next_values[t] - values[t]
        carry = delta + gamma * lam * not_end[t] * carry
        advantages[t] = carry
    return advantages, advantages + values


def next_values_from(values: torch.Tensor, bootstrap: torch.Tensor) -> torch.Tensor:
    """V'_t = V_{t+1} within a rollout; the last step takes ``bootstrap`` (value of the state after it)."""
    return torch.cat([values[1:], bootstrap.unsqueeze(0)], dim=0)
