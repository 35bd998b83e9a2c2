"""What users experience, per slot and per episode: the one definition of every reported metric.

Per-slot metrics (:func:`slot_metrics`) are (B,) tensors averaged over the K users of a slot; the
evaluation averages them over the slots of an episode, the trainer over its rollout. Delay quantiles
(:func:`delay_quantiles`) are taken over all requests of an episode, never averaged from per-slot
quantiles. README "Metrics" lists them with the same names.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from optimizer.config import CostConfig
from optimizer.env import system_model as sm


@dataclass(frozen=True)
class Metric:
    name: str
    title: str          # column title on screen
    definition: str     # one line, as in README's metric table (tests/test_metric_names.py)


SLOT_METRICS = (
    Metric("delay_s", "delay (s)", "mean τ_k over all requests, failures at τ_fail: what C8 judges against τ̄"),
    Metric("deadline_miss_rate", "over limit", "share of requests with τ_k > τ̄ (failures included)"),
    Metric("success_rate", "success", "share of requests served: model deployed and τ^succ ≤ τ_fail"),
    Metric("timeout_rate", "time-out", "share of requests deployed but slower than τ_fail (charged e and C^priv)"),
    Metric("cache_miss_rate", "miss", "share of requests sent to a server not hosting the model (nothing runs)"),
    Metric("energy_j", "energy (J)", "ē, eq. 9: mean e_k over all requests, time-outs charged, misses 0"),
    Metric("privacy_cost", "privacy", "C̄^priv, eq. 11: mean C^priv_k over all requests, time-outs charged, misses 0"),
    Metric("user_cost", "user cost", "Cost(t), eq. 12: μ1 C̄^priv + μ2 ē"),
    Metric("served_user_cost", "cost/served", "eq. 12 averaged over served users only (slots with none left out)"),
    Metric("charged_cost", "cost, fails charged",
           "eq. 12 per request with each failure charged C^fail, the most any served outcome of it can cost"),
    Metric("split_depth", "z/L", "mean relative split depth z_k / L_i of the requested model (0 edge, 1 device)"),
)
EPISODE_METRICS = (
    Metric("delay_median_s", "median (s)", "median τ_k over all requests of an episode"),
    Metric("delay_p95_s", "p95 (s)", "95th percentile of τ_k over all requests of an episode"),
)
SLOT_METRIC_NAMES = tuple(m.name for m in SLOT_METRICS)
METRIC_NAMES = SLOT_METRIC_NAMES + tuple(m.name for m in EPISODE_METRICS)
METRICS = {m.name: m for m in SLOT_METRICS + EPISODE_METRICS}


#: Quantiles of the per-user distribution (the paper's Fig. 6): one sample is one user's mean ``charged_cost``
#: over the slots of one episode; names ``user_charged_cost_p05`` … ``_p95``.
USER_QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
USER_QUANTILE_NAMES = tuple(f"user_charged_cost_p{round(100 * q):02d}" for q in USER_QUANTILES)


def request_charged_cost(out: sm.UserOutcome, cost: CostConfig) -> torch.Tensor:
    """(B, K) eq. 12 of each request (+ a defense option's accuracy cost), a failure charged C^fail
    (``charged_cost`` before the mean over users)."""
    return torch.where(out.served, out.spent(cost), out.failure_charge)


def user_quantiles(per_user: torch.Tensor) -> dict[str, float]:
    """:data:`USER_QUANTILE_NAMES` over every entry of ``per_user`` (episodes × users, float64 quantiles)."""
    q = torch.quantile(per_user.double().flatten(), torch.tensor(USER_QUANTILES, dtype=torch.float64))
    return dict(zip(USER_QUANTILE_NAMES, q.tolist()))


def slot_metrics(out: sm.UserOutcome, split_depth: torch.Tensor, cost: CostConfig,
                 charged: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """The per-slot metrics of :data:`SLOT_METRICS` from one slot's outcome (B, K) → (B,) each.

    ``split_depth`` (B, K) is z_k / L_i in [0, 1]; ``charged`` the requests' :func:`request_charged_cost`
    when the caller has it already.
    """
    charged = request_charged_cost(out, cost) if charged is None else charged
    mean_energy, mean_priv = out.energy_j.mean(-1), out.privacy.mean(-1)
    served = out.served
    n_served = served.sum(-1)
    served_cost = sm.system_cost((out.privacy * served).sum(-1), (out.energy_j * served).sum(-1),
                                 cost) / n_served
    return {
        "delay_s": out.delay_s.mean(-1),
        "deadline_miss_rate": (out.delay_s > cost.delay_limit_s).float().mean(-1),
        "success_rate": served.float().mean(-1),
        "timeout_rate": out.timed_out.float().mean(-1),
        "cache_miss_rate": (~out.hosted).float().mean(-1),
        "energy_j": mean_energy,
        "privacy_cost": mean_priv,
        "user_cost": sm.system_cost(mean_priv, mean_energy, cost),
        "served_user_cost": torch.where(n_served > 0, served_cost, torch.full_like(served_cost, torch.nan)),
        "charged_cost": charged.mean(-1),
        "split_depth": split_depth.float().mean(-1),
    }


def delay_quantiles(delay_s: torch.Tensor) -> dict[str, torch.Tensor]:
    """Median and 95th percentile of τ_k along the last axis (all requests of an episode)."""
    q = torch.quantile(delay_s.double(), torch.tensor([0.5, 0.95], dtype=torch.float64, device=delay_s.device),
                       dim=-1)
    return {"delay_median_s": q[0], "delay_p95_s": q[1]}
