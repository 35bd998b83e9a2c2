"""Rollout storage of the three layers (trajectories ξ^dep, ξ^usr, ξ^alloc of eq. 34–36).

Each buffer is filled once per iteration from scratch (no sample from an earlier iteration can leak in,
unlike the published user buffer) and holds exactly what is needed to recompute the same masked
distribution at update time: observations, masks, the actions taken and their log-probs, and the
critics' values (in raw units, for GAE). ``time`` is the first dimension, then the B env copies,
then the agents (users K or servers J).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch


def _zeros(spec: dict[str, tuple[tuple[int, ...], torch.dtype]], device) -> dict[str, torch.Tensor]:
    return {name: torch.zeros(shape, dtype=dtype, device=device) for name, (shape, dtype) in spec.items()}


@dataclass
class UserBuffer:
    """Per slot t: o^usrloc, o^usrglob, masks, (σ, z), log π, V^R, V^C, r^usr, c = τ (eq. 35)."""

    local: torch.Tensor         # (T, B, K, d_loc)
    glob: torch.Tensor          # (T, B, G)
    server_mask: torch.Tensor   # (T, B, K, J) bool
    split_mask: torch.Tensor    # (T, B, K, Z) bool
    server: torch.Tensor        # (T, B, K) long
    split: torch.Tensor         # (T, B, K) long
    logp: torch.Tensor          # (T, B, K)
    value_reward: torch.Tensor  # (T, B, K) raw units
    value_cost: torch.Tensor    # (T, B, K) raw units
    reward: torch.Tensor        # (T, B, K) eq. 25
    cost: torch.Tensor          # (T, B, K) τ_k, eq. 27

    @classmethod
    def empty(cls, T: int, B: int, K: int, J: int, Z: int, d_loc: int, d_glob: int, device) -> "UserBuffer":
        f, b, l = torch.float32, torch.bool, torch.long
        return cls(**_zeros({"local": ((T, B, K, d_loc), f), "glob": ((T, B, d_glob), f),
                           "server_mask": ((T, B, K, J), b), "split_mask": ((T, B, K, Z), b),
                           "server": ((T, B, K), l), "split": ((T, B, K), l), "logp": ((T, B, K), f),
                           "value_reward": ((T, B, K), f), "value_cost": ((T, B, K), f),
                           "reward": ((T, B, K), f), "cost": ((T, B, K), f)}, device))


@dataclass
class AllocationBuffer:
    """Per slot t and server j: integer tokens, association mask, shares, log π, V, r^alloc (eq. 36)."""

    tokens: torch.Tensor        # (T, B, K, 3) long (service, input size, split) per user
    assoc: torch.Tensor         # (T, B, J, K) bool
    shares: torch.Tensor        # (T, B, J, K, 2) [compute, bandwidth]
    logp: torch.Tensor          # (T, B, J)
    value: torch.Tensor         # (T, B, J) raw units
    reward: torch.Tensor        # (T, B, J) eq. 26

    @classmethod
    def empty(cls, T: int, B: int, J: int, K: int, device) -> "AllocationBuffer":
        f = torch.float32
        return cls(**_zeros({"tokens": ((T, B, K, 3), torch.long), "assoc": ((T, B, J, K), torch.bool),
                           "shares": ((T, B, J, K, 2), f), "logp": ((T, B, J), f),
                           "value": ((T, B, J), f), "reward": ((T, B, J), f)}, device))


@dataclass
class DeploymentBuffer:
    """Per decision d (every ΔT slots) and server j: the macro-action with every step's mask (eq. 34).

    ``reward`` is R^dep (eq. 24) summed over the ΔT slots the decision was in force.
    """

    demand: torch.Tensor        # (D, B, J, 2I) [r, h_j] of eq. 14
    prev_deployment: torch.Tensor  # (D, B, J·I) vec(X(t − ΔT)) of eq. 15
    storage: torch.Tensor       # (D, B, J) S_j
    actions: torch.Tensor       # (D, B, J, Lmax) long
    step_masks: torch.Tensor    # (D, B, J, Lmax, A) bool
    active: torch.Tensor        # (D, B, J, Lmax) bool
    logp: torch.Tensor          # (D, B, J)
    value: torch.Tensor         # (D, B, J) raw units
    reward: torch.Tensor        # (D, B, J)

    @classmethod
    def empty(cls, D: int, B: int, J: int, I: int, choices: int, storage_dtype, device) -> "DeploymentBuffer":
        f = torch.float32
        return cls(**_zeros({"demand": ((D, B, J, 2 * I), f), "prev_deployment": ((D, B, J * I), f),
                           "storage": ((D, B, J), storage_dtype), "actions": ((D, B, J, choices), torch.long),
                           "step_masks": ((D, B, J, choices, choices), torch.bool),
                           "active": ((D, B, J, choices), torch.bool), "logp": ((D, B, J), f),
                           "value": ((D, B, J), f), "reward": ((D, B, J), f)}, device))

    def store(self, d: int, sample, B: int, J: int) -> None:
        """Write a :class:`DeploymentSample` (N = B·J agents, L ≤ Lmax steps) at decision d, padded."""
        L = sample.actions.shape[1]
        self.actions[d, :, :, :L] = sample.actions.view(B, J, L)
        self.step_masks[d, :, :, :L] = sample.step_masks.view(B, J, L, -1)
        self.active[d, :, :, :L] = sample.active.view(B, J, L)
        self.logp[d] = sample.logp.view(B, J)


def flatten(buffer, names: tuple[str, ...], leading: int) -> dict[str, torch.Tensor]:
    """Merge the first ``leading`` dims (time, copies, agents) of the named fields into one."""
    out = {}
    for name in names:
        t = getattr(buffer, name)
        out[name] = t.reshape(-1, *t.shape[leading:])
    return out


def field_names(buffer) -> tuple[str, ...]:
    return tuple(f.name for f in fields(buffer))
