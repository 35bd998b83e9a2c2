"""The system model, equation by equation (paper Sec. III and IV-A). Pure, broadcastable functions.

Units: bytes (``*_bytes``), bit/s (``*_bps``), FLOP or MAC counts (``*_work``) and FLOP/s (``*_flops``),
seconds (``*_s``), joules (``*_j``). Data volumes in bytes are sent over links in bits (× 8).

A user is *served* when the requested model is deployed on its server (x_{i,j}·y_{j,k} = 1, eq. 5) and
the request completes within τ_fail (τ^succ ≤ τ_fail: a time-out; this also covers a zero bandwidth or
compute share, which makes τ^succ infinite). An unserved user has delay τ_fail (so τ_k ≤ τ_fail
always) and is charged no energy and no privacy cost; its reward is R^fail (eq. 25).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from optimizer.config import CostConfig, RewardConfig

BITS_PER_BYTE = 8.0


def _ratio(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    """num / den with 0 / anything = 0 and positive / 0 = inf."""
    return torch.where(num > 0, num / den, torch.zeros_like(num))


def download_delay_s(download_bytes: torch.Tensor, downlink_bps: torch.Tensor) -> torch.Tensor:
    """τ^E2U = D^U / R^E2U (Sec. III-C); ``download_bytes`` is what the user cache does not hold."""
    return _ratio(download_bytes * BITS_PER_BYTE, downlink_bps)


def local_compute_delay_s(input_batch: torch.Tensor, device_work: torch.Tensor,
                          user_flops: torch.Tensor) -> torch.Tensor:
    """τ^U = D^in · Ω^U / f_k."""
    return _ratio(input_batch * device_work, user_flops)


def upload_delay_s(input_batch: torch.Tensor, uplink_bytes: torch.Tensor,
                   uplink_bps: torch.Tensor) -> torch.Tensor:
    """τ^U2E = D^in · D^up / R^U2E."""
    return _ratio(input_batch * uplink_bytes * BITS_PER_BYTE, uplink_bps)


def edge_compute_delay_s(input_batch: torch.Tensor, server_work: torch.Tensor,
                         allocated_flops: torch.Tensor) -> torch.Tensor:
    """τ^E = D^in · Ω^E / f_{j,k}."""
    return _ratio(input_batch * server_work, allocated_flops)


def total_delay_s(success_delay_s: torch.Tensor, served: torch.Tensor, tau_fail_s: float) -> torch.Tensor:
    """τ_k = τ^succ if x_{i,j}·y_{j,k} = 1 else τ_fail (eq. 5)."""
    return torch.where(served, success_delay_s, torch.full_like(success_delay_s, tau_fail_s))


def compute_energy_j(energy_j_per_flop: torch.Tensor, input_batch: torch.Tensor,
                     device_work: torch.Tensor) -> torch.Tensor:
    """e^U = ε · D^in · Ω^U (eq. 6)."""
    return energy_j_per_flop * input_batch * device_work


def upload_energy_j(user_power_w: torch.Tensor, upload_s: torch.Tensor) -> torch.Tensor:
    """e^U2E = P_k · τ^U2E (eq. 7)."""
    return user_power_w * upload_s


def privacy_cost(privacy_pref: torch.Tensor, leakage: torch.Tensor, input_batch: torch.Tensor,
                 raw_input_bytes: torch.Tensor, cfg: CostConfig) -> torch.Tensor:
    """C^priv = (α1 + α2·Pre_k) · Lea_k · D^in · D_raw · scale (eq. 10; scale = privacy_bytes_scale)."""
    return (cfg.alpha1 + cfg.alpha2 * privacy_pref) * leakage * input_batch * raw_input_bytes \
        * cfg.privacy_bytes_scale


def system_cost(mean_privacy: torch.Tensor, mean_energy_j: torch.Tensor, cfg: CostConfig) -> torch.Tensor:
    """Cost(t) = μ1 · C̄^priv + μ2 · ē (eq. 12)."""
    return cfg.mu1 * mean_privacy + cfg.mu2 * mean_energy_j


def user_reward(privacy: torch.Tensor, energy_j: torch.Tensor, delay_s: torch.Tensor, served: torch.Tensor,
                cost: CostConfig, reward: RewardConfig) -> torch.Tensor:
    """R^usr = −(μ1 C^priv + μ2 e + μ3 [τ − τ̄]_+) if served else R^fail (eq. 25)."""
    excess = (delay_s - cost.delay_limit_s).clamp_min(0.0)
    value = -(cost.mu1 * privacy + cost.mu2 * energy_j + reward.mu3 * excess)
    return torch.where(served, value, torch.full_like(value, reward.reward_fail))


def allocation_reward(delay_s: torch.Tensor, assoc: torch.Tensor) -> torch.Tensor:
    """R^alloc_j = −(1/|U_j|) Σ_{k∈U_j} τ_k (eq. 26); 0 for a server with no users.

    ``delay_s`` (..., K), ``assoc`` (..., J, K) bool → (..., J).
    """
    total = (assoc * delay_s.unsqueeze(-2)).sum(-1)
    count = assoc.sum(-1)
    return -total / count.clamp_min(1)


def migration_cost_s(new_deployment: torch.Tensor, old_deployment: torch.Tensor, model_bytes: torch.Tensor,
                     cloud_rate_bps: torch.Tensor) -> torch.Tensor:
    """C^mig_j = Σ_i x_{i,j}(t) (1 − x_{i,j}(t−ΔT)) · D_i / R^C2E (eq. 23), in seconds.

    deployments (..., J, I) bool, model_bytes (I,), cloud_rate_bps (..., J) → (..., J).
    """
    fetched = (new_deployment & ~old_deployment).to(model_bytes.dtype)
    return (fetched * model_bytes).sum(-1) * BITS_PER_BYTE / cloud_rate_bps


def deployment_reward(hits: torch.Tensor, migration_s: torch.Tensor, reward: RewardConfig) -> torch.Tensor:
    """R^dep_j = μ_hit · H_j − μ_mig · C^mig_j (eq. 24); H_j counted over the ΔT period (eq. 22)."""
    return reward.mu_hit * hits - reward.mu_mig * migration_s


@dataclass
class UserOutcome:
    """Per-user results of one slot (any broadcast shape)."""
    download_s: torch.Tensor      # τ^E2U
    local_s: torch.Tensor         # τ^U
    upload_s: torch.Tensor        # τ^U2E
    edge_s: torch.Tensor          # τ^E
    served: torch.Tensor          # bool: x_{i,j} y_{j,k} = 1 and τ^succ <= τ_fail
    delay_s: torch.Tensor         # τ_k, eq. 5
    energy_j: torch.Tensor        # e_k, eq. 8 (0 if not served)
    privacy: torch.Tensor         # C^priv_k, eq. 10 (0 if not served)


def user_outcome(*, input_batch: torch.Tensor, download_bytes: torch.Tensor, device_work: torch.Tensor,
                 server_work: torch.Tensor, uplink_bytes: torch.Tensor, leakage: torch.Tensor,
                 raw_input_bytes: torch.Tensor, hosted: torch.Tensor, user_flops: torch.Tensor,
                 allocated_flops: torch.Tensor, downlink_bps: torch.Tensor, uplink_bps: torch.Tensor,
                 user_power_w: torch.Tensor, energy_j_per_flop: torch.Tensor, privacy_pref: torch.Tensor,
                 cost: CostConfig, tau_fail_s: float) -> UserOutcome:
    """Eq. 4–10 for one (server, split, allocation) choice per user; everything broadcasts."""
    t_down = download_delay_s(download_bytes, downlink_bps)
    t_local = local_compute_delay_s(input_batch, device_work, user_flops)
    t_up = upload_delay_s(input_batch, uplink_bytes, uplink_bps)
    t_edge = edge_compute_delay_s(input_batch, server_work, allocated_flops)
    t_succ = t_down + t_local + t_up + t_edge                                    # eq. 4
    served = hosted & (t_succ <= tau_fail_s)                                   # time-out: τ_fail
    delay = total_delay_s(t_succ, served, tau_fail_s)                            # eq. 5
    energy = compute_energy_j(energy_j_per_flop, input_batch, device_work) \
        + upload_energy_j(user_power_w, torch.where(served, t_up, torch.zeros_like(t_up)))  # eq. 6–8
    zero = torch.zeros_like(energy)
    privacy = privacy_cost(privacy_pref, leakage, input_batch, raw_input_bytes, cost)     # eq. 10
    return UserOutcome(download_s=t_down, local_s=t_local, upload_s=t_up, edge_s=t_edge, served=served,
                       delay_s=delay, energy_j=torch.where(served, energy, zero),
                       privacy=torch.where(served, privacy, zero))
