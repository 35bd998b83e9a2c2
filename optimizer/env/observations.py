"""What the three agent kinds see (eq. 14–18) and what a step returns. Plain tensor containers."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Callable

import torch


@dataclass
class DeploymentObs:
    """Deployment agents, one per server, every ΔT slots.

    local (B, J, 3I): eq. 14 [r, h_j, x^st = 0]: r = share of all requests of the last ΔT period per
        service, h_j = share of all requests that went to server j, per service (both sum to ≤ 1).
    glob (B, J, 3I + J·I): eq. 15, local + vec(X(t − ΔT)) flattened server-major (j·I + i).
    storage_bytes (B, J): S_j. model_bytes (I,): D_i.
    fit_mask (B, J, I) bool: services that fit in an empty server (D_i ≤ S_j); during auto-regressive
        decoding use :func:`optimizer.env.deployment_fit_mask` with the partial selection.
    """
    local: torch.Tensor
    glob: torch.Tensor
    storage_bytes: torch.Tensor
    model_bytes: torch.Tensor
    fit_mask: torch.Tensor


class UserObs:
    """User agents, every slot. ``local`` and ``glob`` are built on first access (they are large).

    model (B, K) long: requested service i. input_size (B, K) long: D^in_k.
    local (B, K, d_loc): eq. 16 [one-hot(i) (I), one-hot(D^in − low) (n_in), vec(X(t)) (J·I)] and,
        when ``cfg.observe_channel``, the J channel gains to this user as (10·log10 g + 110) / 20.
    glob (B, 2K + J·I): eq. 17 [i_k / (I − 1), D^in_k / high, vec(X(t))].
    server_mask (B, K, J) bool: servers hosting the service (all True for a user none can serve,
        or when ``cfg.mask_servers_without_service`` is False).
    split_mask (B, K, Z) bool: z ≤ L_i of the requested service.
    """

    def __init__(self, model: torch.Tensor, input_size: torch.Tensor, server_mask: torch.Tensor,
                 split_mask: torch.Tensor, build_local: Callable[[], torch.Tensor],
                 build_glob: Callable[[], torch.Tensor]) -> None:
        self.model, self.input_size = model, input_size
        self.server_mask, self.split_mask = server_mask, split_mask
        self._build_local, self._build_glob = build_local, build_glob

    @functools.cached_property
    def local(self) -> torch.Tensor:
        return self._build_local()

    @functools.cached_property
    def glob(self) -> torch.Tensor:
        return self._build_glob()


@dataclass
class AllocObs:
    """Allocation agents, one per server, every slot after the user actions (eq. 18).

    tokens (B, J, K, 3): [i_k / (I − 1), D^in_k / high, z_k / (Z − 1)] for associated users, 0 else.
    assoc_mask (B, J, K) bool: y_{j,k}.
    server (B, K) long, split (B, K) long: the users' choices the shares are for (for heuristics).
    """
    tokens: torch.Tensor
    assoc_mask: torch.Tensor
    server: torch.Tensor
    split: torch.Tensor


@dataclass
class RequestLoads:
    """What each user's choice (server, split) asks of its server, (B, K) each (``EdgeEnv.request_loads``).

    input_batch D^in_k; download_bytes D^U(z) not in the user's cache; server_work Ω^E(z); uplink_bytes
    D^up(z); downlink_se / uplink_se: log2(1 + P g / σ²) in bit/s/Hz at an equal bandwidth share.
    """
    input_batch: torch.Tensor
    download_bytes: torch.Tensor
    server_work: torch.Tensor
    uplink_bytes: torch.Tensor
    downlink_se: torch.Tensor
    uplink_se: torch.Tensor


@dataclass
class StepResult:
    """Outcome of one slot.

    user_reward (B, K) eq. 25; user_cost (B, K) c_k = τ_k eq. 27; alloc_reward (B, J) eq. 26;
    dep_reward (B, J) eq. 24, non-zero only on the slot that closes a ΔT period (or the episode);
    truncated (B,) bool at the last slot of an episode; served (B, K) bool; timed_out (B, K) bool
    (deployed but τ^succ > τ_fail; a user neither served nor timed out was a cache miss);
    metrics: dict of (B,) tensors, :data:`optimizer.env.metrics.SLOT_METRICS`; charged_cost (B, K) each
    request's eq. 12 with a failure charged C^fail (whose mean over users is ``metrics["charged_cost"]``).
    """
    user_reward: torch.Tensor
    user_cost: torch.Tensor
    alloc_reward: torch.Tensor
    dep_reward: torch.Tensor
    truncated: torch.Tensor
    served: torch.Tensor
    timed_out: torch.Tensor
    metrics: dict[str, torch.Tensor]
    charged_cost: torch.Tensor | None = None


def deployment_fit_mask(storage_bytes: torch.Tensor, model_bytes: torch.Tensor,
                        selected: torch.Tensor) -> torch.Tensor:
    """Services still selectable during auto-regressive deployment (Sec. IV-B1): not yet selected and
    D_i ≤ S_j − Σ_{selected} D_i (C7). storage (B, J), model_bytes (I,), selected (B, J, I) bool."""
    used = (selected * model_bytes).sum(-1, keepdim=True)
    return ~selected & (model_bytes <= storage_bytes.unsqueeze(-1) - used)
