"""The system model, equation by equation (paper Sec. III and IV-A). Pure, broadcastable functions.

Units: bytes (``*_bytes``), bit/s (``*_bps``), FLOP or MAC counts (``*_work``) and FLOP/s (``*_flops``),
seconds (``*_s``), joules (``*_j``). Data volumes in bytes are sent over links in bits (× 8).

Three outcomes per request (eq. 5 and the conventions the paper leaves open, README "Environment
conventions"):

- *served*: the requested model is deployed on the chosen server (x_{i,j}·y_{j,k} = 1) and τ^succ ≤ τ_fail;
  delay τ^succ, charged its energy e_k and privacy cost C^priv_k, reward eq. 25.
- *timed out*: deployed, but τ^succ > τ_fail (slow link, a zero share). The user stops waiting, so its
  delay is τ_fail. It is charged its whole action: the device commits to downloading and running its
  layers and sending the feature when it acts, so it pays their energy (upload energy for at most τ_fail
  of transmission) and privacy, even when τ_fail passes during the download (most of Local-Only's
  time-outs). Charging only the part done before τ_fail would make a stalled download free, so slowing
  down would pay. Its reward is R^fail minus those costs; with R^fail ≤ −μ3(τ_fail − τ̄) a time-out never
  earns more than the same action finishing late: failing never pays.
- *missed*: the model is not deployed there; nothing runs. Delay τ_fail, no energy or privacy, reward R^fail.
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


def effective_leakage(ssim: torch.Tensor, floor: torch.Tensor, choice_split: torch.Tensor,
                      num_splits: torch.Tensor, measure: str) -> torch.Tensor:
    """Lea(z) of eq. 10 from the measured SSIM (I, Z) and each service's no-information floor (I,).

    ``"ssim"``: Lea = SSIM (eq. 3). ``"above_floor"``: Lea = clamp((SSIM − floor) / (1 − floor), 0, 1), the
    share of the reconstruction quality an attacker gains over guessing the mean image. The boundary
    cases stay Lea(0) = 1 and Lea(L_i) = 0 (and padded splits keep Lea(L_i)). ``choice_split`` (I, Z) is the
    split point each column runs (a defense option's column runs its split) and ``num_splits`` (I,) L_i.
    """
    if measure == "ssim":
        return ssim
    f = floor.unsqueeze(-1)
    above = ((ssim - f) / (1.0 - f)).clamp(0.0, 1.0)
    last = num_splits.unsqueeze(-1)
    return torch.where(choice_split == 0, torch.ones_like(ssim),
                       torch.where(choice_split >= last, torch.zeros_like(ssim), above))


def privacy_cost(privacy_pref: torch.Tensor, leakage: torch.Tensor, input_batch: torch.Tensor,
                 raw_input_bytes: torch.Tensor, cfg: CostConfig) -> torch.Tensor:
    """C^priv = (α1 + α2·Pre_k) · Lea_k · D^in · D_raw · scale (eq. 10; scale = privacy_bytes_scale)."""
    return (cfg.alpha1 + cfg.alpha2 * privacy_pref) * leakage * input_batch * raw_input_bytes \
        * cfg.privacy_bytes_scale


def system_cost(mean_privacy: torch.Tensor, mean_energy_j: torch.Tensor, cfg: CostConfig) -> torch.Tensor:
    """Cost(t) = μ1 · C̄^priv + μ2 · ē (eq. 12)."""
    return cfg.mu1 * mean_privacy + cfg.mu2 * mean_energy_j


def user_reward(privacy: torch.Tensor, energy_j: torch.Tensor, delay_s: torch.Tensor, served: torch.Tensor,
                cost: CostConfig, reward: RewardConfig, accuracy_cost: torch.Tensor | None = None) -> torch.Tensor:
    """R^usr (eq. 25): −(μ1 C^priv + μ2 e + μ3 [τ − τ̄]_+) if served, else R^fail − μ1 C^priv − μ2 e.

    An unserved user's C^priv and e are 0 for a miss and what its action spent for a time-out, so a
    time-out earns R^fail − μ1 C^priv − μ2 e ≤ −(μ1 C^priv + μ2 e + μ3 (τ_fail − τ̄)), the reward of the same
    action finishing at τ_fail, whenever R^fail ≤ −μ3 (τ_fail − τ̄) (checked in ``EnvConfig``). With defenses
    (``env.defenses``) the option's ``accuracy_cost`` is spent too.
    """
    spent = cost.mu1 * privacy + cost.mu2 * energy_j
    if accuracy_cost is not None:
        spent = spent + accuracy_cost
    excess = (delay_s - cost.delay_limit_s).clamp_min(0.0)
    return torch.where(served, -(spent + reward.mu3 * excess), reward.reward_fail - spent)


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
    """Per-user results of one slot (any broadcast shape). ``hosted`` = served or timed out."""
    download_s: torch.Tensor      # τ^E2U
    local_s: torch.Tensor         # τ^U
    upload_s: torch.Tensor        # τ^U2E
    edge_s: torch.Tensor          # τ^E
    hosted: torch.Tensor          # bool: x_{i,j} y_{j,k} = 1 (the model ran; not a miss)
    served: torch.Tensor          # bool: hosted and τ^succ <= τ_fail
    timed_out: torch.Tensor       # bool: hosted and τ^succ > τ_fail
    delay_s: torch.Tensor         # τ_k, eq. 5: τ^succ if served, else τ_fail
    energy_j: torch.Tensor        # e_k, eq. 8 (0 for a miss)
    privacy: torch.Tensor         # C^priv_k, eq. 10 (0 for a miss)
    failure_charge: torch.Tensor  # C^fail_k: no served outcome of this request costs more (:func:`failure_charge`)
    accuracy_cost: torch.Tensor | float = 0.0   # ω_acc · D^in · Δacc of a defense option (0 without them, or a miss)

    def spent(self, cost: CostConfig) -> torch.Tensor:
        """μ1 C^priv + μ2 e + the accuracy cost: what the action spent (eq. 12 per request, + defenses)."""
        return cost.mu1 * self.privacy + cost.mu2 * self.energy_j + self.accuracy_cost


def failure_charge(privacy_pref: torch.Tensor, input_batch: torch.Tensor, raw_input_bytes: torch.Tensor,
                   model_work: torch.Tensor, energy_j_per_flop: torch.Tensor, user_power_w: torch.Tensor,
                   cost: CostConfig, tau_fail_s: float, worst_accuracy_cost: torch.Tensor | float = 0.0
                   ) -> torch.Tensor:
    """C^fail_k = μ1 C^priv(Lea = 1) + μ2 (ε D^in Ω + P_k τ_fail) + max accuracy cost, Ω the whole model.

    An upper bound on what every *served* outcome of the request spends, whatever its server, split and
    shares: Lea ≤ 1 (eq. 10), Ω^U(z) ≤ Ω (eq. 6), τ^U2E ≤ τ^succ ≤ τ_fail (eq. 7), and no option of the
    service costs more accuracy than its worst (``worst_accuracy_cost``; 0 without defenses). Ω is the
    whole model's work; for a service with defense options the env passes the largest Ω^U + Ω^E over its
    columns, so a bottleneck's extra MACs stay inside the bound. Charging a failed request C^fail therefore
    never makes failing look cheaper than serving.
    """
    worst_privacy = privacy_cost(privacy_pref, torch.ones_like(input_batch), input_batch, raw_input_bytes, cost)
    worst_energy = compute_energy_j(energy_j_per_flop, input_batch, model_work) + upload_energy_j(user_power_w, tau_fail_s)
    return cost.mu1 * worst_privacy + cost.mu2 * worst_energy + worst_accuracy_cost


def user_outcome(*, input_batch: torch.Tensor, download_bytes: torch.Tensor, device_work: torch.Tensor,
                 server_work: torch.Tensor, uplink_bytes: torch.Tensor, leakage: torch.Tensor,
                 raw_input_bytes: torch.Tensor, hosted: torch.Tensor, user_flops: torch.Tensor,
                 allocated_flops: torch.Tensor, downlink_bps: torch.Tensor, uplink_bps: torch.Tensor,
                 user_power_w: torch.Tensor, energy_j_per_flop: torch.Tensor, privacy_pref: torch.Tensor,
                 cost: CostConfig, tau_fail_s: float, accuracy_drop: torch.Tensor | None = None,
                 worst_accuracy_drop: torch.Tensor | None = None, model_work: torch.Tensor | None = None
                 ) -> UserOutcome:
    """Eq. 4–10 for one (server, split, allocation) choice per user; everything broadcasts.

    ``accuracy_drop`` Δacc of the chosen column (a defense option) and ``worst_accuracy_drop`` the service's
    largest (for C^fail); ``model_work`` the whole model's work Ω (default Ω^U + Ω^E of the choice)."""
    t_down = download_delay_s(download_bytes, downlink_bps)
    t_local = local_compute_delay_s(input_batch, device_work, user_flops)
    t_up = upload_delay_s(input_batch, uplink_bytes, uplink_bps)
    t_edge = edge_compute_delay_s(input_batch, server_work, allocated_flops)
    t_succ = t_down + t_local + t_up + t_edge                                    # eq. 4
    served = hosted & (t_succ <= tau_fail_s)
    timed_out = hosted & ~served
    delay = total_delay_s(t_succ, served, tau_fail_s)                            # eq. 5
    energy = compute_energy_j(energy_j_per_flop, input_batch, device_work) \
        + upload_energy_j(user_power_w, t_up.clamp_max(tau_fail_s))              # eq. 6–8
    privacy = privacy_cost(privacy_pref, leakage, input_batch, raw_input_bytes, cost)     # eq. 10
    zero = torch.zeros_like(energy)
    if accuracy_drop is None:
        accuracy, worst_accuracy = zero, 0.0
    else:
        accuracy = torch.where(hosted, cost.accuracy_weight * input_batch * accuracy_drop, zero)
        worst_accuracy = cost.accuracy_weight * input_batch * worst_accuracy_drop
    charge = failure_charge(privacy_pref, input_batch, raw_input_bytes,
                            device_work + server_work if model_work is None else model_work,
                            energy_j_per_flop, user_power_w, cost, tau_fail_s, worst_accuracy)
    return UserOutcome(download_s=t_down, local_s=t_local, upload_s=t_up, edge_s=t_edge, hosted=hosted,
                       served=served, timed_out=timed_out, delay_s=delay,
                       energy_j=torch.where(hosted, energy, zero), privacy=torch.where(hosted, privacy, zero),
                       failure_charge=charge, accuracy_cost=accuracy)
