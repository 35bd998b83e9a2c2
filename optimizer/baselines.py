"""Heuristic policies (no learning), batched over copies and users (paper Sec. V-A baselines).

Deployment: :class:`PopularityDeployment`, :class:`LRUDeployment` (both fill storage greedily, C7).
User (association + split): :class:`LocalOnly` (z = L_i), :class:`EdgeOnly` (z = 0), :class:`Greedy`
(deepest split meeting τ̄ under an equal-share estimate), :class:`RandomUser`, and the strong reference
:class:`LagrangianUser` (per slot, argmin over (server, split) of cost + λ·delay under equal share;
λ tuned by :func:`calibrate_lagrangian` to meet τ̄ on average).
Allocation: :class:`EqualShare`. Association of the simple baselines is "channel-based": the
strongest-channel server among those the user's server mask allows (i.e. hosting the service).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

from optimizer.env import AllocObs, DeploymentObs, EdgeEnv, UserObs
from optimizer.env.system_model import UserOutcome


def greedy_fill(score: torch.Tensor, model_bytes: torch.Tensor, storage_bytes: torch.Tensor) -> torch.Tensor:
    """Deploy services in decreasing ``score`` (B, J, I), skipping any that no longer fit (C7).
    Ties go to smaller models. A loop over the I services, vectorised over copies and servers."""
    tie = -model_bytes / model_bytes.max().clamp_min(1.0) * 1e-6
    order = (score.double() + tie.double()).argsort(dim=-1, descending=True, stable=True)
    x = torch.zeros_like(score, dtype=torch.bool)
    used = torch.zeros_like(storage_bytes)
    for n in range(order.shape[-1]):
        cand = order[..., n:n + 1]
        size = model_bytes[cand].squeeze(-1)
        fits = used + size <= storage_bytes
        x.scatter_(-1, cand, fits.unsqueeze(-1))
        used = used + fits * size
    return x


class PopularityDeployment:
    """Services by this server's share of the last period's requests h_j (eq. 14), system-wide
    popularity r as a tie-break (weight ``global_weight``). Ranking every server by r alone makes all
    servers hold the same popular set and leaves the tail unserved (measured: 92 % vs 99 % success)."""

    def __init__(self, global_weight: float = 0.01) -> None:
        self.global_weight = global_weight

    def deploy(self, env: EdgeEnv, obs: DeploymentObs) -> torch.Tensor:
        I = obs.model_bytes.shape[0]
        score = obs.local[..., I:2 * I] + self.global_weight * obs.local[..., :I]
        return greedy_fill(score, obs.model_bytes, obs.storage_bytes)


class LRUDeployment:
    """Keep the most recently requested services of each server (ties: most recent system-wide)."""

    def deploy(self, env: EdgeEnv, obs: DeploymentObs) -> torch.Tensor:
        recent = env.last_request_slot.double()                           # (B, J, I), −1 = never
        system = recent.max(dim=1, keepdim=True).values
        score = recent * (env.cfg.slots_per_episode + 2) + system
        return greedy_fill(score, obs.model_bytes, obs.storage_bytes)


class EqualShare:
    """f_{j,k} = f_j / |U_j|, B_{j,k} = B_j / |U_j| for the users associated with server j."""

    def allocate(self, env: EdgeEnv, obs: AllocObs) -> tuple[torch.Tensor, torch.Tensor]:
        assoc = obs.assoc_mask.float()
        share = assoc / assoc.sum(-1, keepdim=True).clamp_min(1.0)
        return share, share


def channel_server(env: EdgeEnv, obs: UserObs) -> torch.Tensor:
    """Strongest-channel server among those the mask allows: (B, K) long."""
    gain = env.channel_gain.transpose(1, 2)                               # (B, K, J)
    return torch.where(obs.server_mask, gain, torch.full_like(gain, -1.0)).argmax(-1)


def users_per_server(server: torch.Tensor, num_servers: int) -> torch.Tensor:
    """n_j (B, J) float: how many users chose each server."""
    counts = torch.zeros(server.shape[0], num_servers, device=server.device)
    return counts.scatter_add_(1, server, torch.ones_like(server, dtype=counts.dtype))


def deepest_split(obs: UserObs) -> torch.Tensor:
    """L_i of each user's service: (B, K) long."""
    return obs.split_mask.long().sum(-1) - 1


class LocalOnly:
    """Whole model on the device (z = L_i), channel-based association."""

    def act(self, env: EdgeEnv, obs: UserObs) -> tuple[torch.Tensor, torch.Tensor]:
        return channel_server(env, obs), deepest_split(obs)


class EdgeOnly:
    """Whole model on the server (z = 0), channel-based association."""

    def act(self, env: EdgeEnv, obs: UserObs) -> tuple[torch.Tensor, torch.Tensor]:
        server = channel_server(env, obs)
        return server, torch.zeros_like(server)


class RandomUser:
    """Uniform over the servers and split points the masks allow. Seeded by :meth:`reset`."""

    def __init__(self, seed: int = 0) -> None:
        self.reset(seed)

    def reset(self, seed: int) -> None:
        self._gen = torch.Generator().manual_seed(seed)

    def act(self, env: EdgeEnv, obs: UserObs) -> tuple[torch.Tensor, torch.Tensor]:
        B, K, J = obs.server_mask.shape
        Z = obs.split_mask.shape[-1]
        server = torch.multinomial(obs.server_mask.reshape(-1, J).float().cpu(), 1, generator=self._gen)
        split = torch.multinomial(obs.split_mask.reshape(-1, Z).float().cpu(), 1, generator=self._gen)
        return server.view(B, K).to(env.device), split.view(B, K).to(env.device)


def _all_splits(env: EdgeEnv, server: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Candidates (B, K, Z): the given server with every split point."""
    Z = env.dims[4]
    splits = torch.arange(Z, device=env.device).expand(*server.shape, Z)
    return server.unsqueeze(-1).expand(*server.shape, Z), splits


class Greedy:
    """Strongest-channel server hosting the service; deepest split whose equal-share delay estimate
    meets τ̄ (the fastest split when none does)."""

    def act(self, env: EdgeEnv, obs: UserObs) -> tuple[torch.Tensor, torch.Tensor]:
        server = channel_server(env, obs)
        cand_server, cand_split = _all_splits(env, server)
        est = env.estimate_outcome(cand_server, cand_split, users_per_server(server, env.dims[1]))
        delay = torch.where(obs.split_mask, est.delay_s, torch.full_like(est.delay_s, math.inf))
        meets = delay <= env.cfg.cost.delay_limit_s
        z = torch.arange(delay.shape[-1], device=env.device)
        deepest_ok = torch.where(meets, z, torch.full_like(z, -1)).max(-1).values
        split = torch.where(deepest_ok >= 0, deepest_ok, delay.argmin(-1))
        return server, split


def lagrangian_score(est: UserOutcome, lam: float, env: EdgeEnv) -> torch.Tensor:
    """μ1 C^priv + μ2 e + λ τ per candidate. An unserved candidate (miss or time-out) costs −R^fail
    instead of its zero energy and privacy, as in eq. 25 — else failing on purpose would look free."""
    cost = env.cfg.cost
    served_cost = cost.mu1 * est.privacy + cost.mu2 * est.energy_j
    fail_cost = torch.full_like(served_cost, -env.cfg.reward.reward_fail)
    return torch.where(est.served, served_cost, fail_cost) + lam * est.delay_s


class LagrangianUser:
    """Per slot, each user takes argmin_{(j, z) allowed} μ1 C^priv + μ2 e + λ·τ under an equal share
    1/n_j of its server. Simultaneous best responses herd onto the same server, so users start on the
    channel-based server and update in ``passes`` round-robin groups (user k in group k mod passes),
    each against the current counts n_j (a vectorised block best response); the split is then the
    best for the final association."""

    def __init__(self, lam: float = 1.0, passes: int = 4) -> None:
        self.lam, self.passes = lam, passes

    def act(self, env: EdgeEnv, obs: UserObs) -> tuple[torch.Tensor, torch.Tensor]:
        B, J, K, I, Z = env.dims
        servers = torch.arange(J, device=env.device).repeat_interleave(Z).expand(B, K, J * Z)
        splits = torch.arange(Z, device=env.device).repeat(J).expand(B, K, J * Z)
        allowed = (obs.server_mask.unsqueeze(-1) & obs.split_mask.unsqueeze(-2)).reshape(B, K, J * Z)
        group = torch.arange(K, device=env.device) % self.passes
        server = channel_server(env, obs)
        for p in range(self.passes):
            est = env.estimate_outcome(servers, splits, users_per_server(server, J), current_server=server)
            score = torch.where(allowed, lagrangian_score(est, self.lam, env), torch.full_like(est.delay_s, math.inf))
            server = torch.where(group == p, score.argmin(-1) // Z, server)
        cand_server, cand_split = _all_splits(env, server)
        est = env.estimate_outcome(cand_server, cand_split, users_per_server(server, J))
        score = torch.where(obs.split_mask, lagrangian_score(est, self.lam, env), torch.full_like(est.delay_s, math.inf))
        return server, score.argmin(-1)


@dataclass
class Calibration:
    """Result of :func:`calibrate_lagrangian`: λ and the calibration runs' mean delay per λ tried."""
    lam: float
    tried: list[tuple[float, float]]


def calibrate_lagrangian(mean_delay_of: Callable[[float], float], delay_limit_s: float, steps: int = 8,
                         lam_max: float = 1e4) -> Calibration:
    """Smallest λ (to a factor 2^(1/2^steps)) whose mean delay meets τ̄, by bisection on log λ.

    ``mean_delay_of(λ)`` runs calibration episodes (on seeds apart from the evaluation's) and returns
    the mean delay; it is assumed non-increasing in λ. λ = 0 is returned when it already meets τ̄;
    λ_max when nothing does (the limit is then out of reach of this heuristic).
    """
    tried: list[tuple[float, float]] = []

    def delay(lam: float) -> float:
        value = mean_delay_of(lam)
        tried.append((lam, value))
        return value

    if delay(0.0) <= delay_limit_s:
        return Calibration(0.0, tried)
    lo, hi = None, 1.0
    while delay(hi) > delay_limit_s:
        lo, hi = hi, hi * 8.0
        if hi > lam_max:
            return Calibration(lam_max, tried)
    lo = lo if lo is not None else hi / 8.0 ** 2
    for _ in range(steps):
        mid = math.sqrt(lo * hi)
        if delay(mid) <= delay_limit_s:
            hi = mid
        else:
            lo = mid
    return Calibration(hi, tried)


USER_BASELINES = ("local-only", "edge-only", "greedy", "random", "lagrangian")
DEPLOYMENT_BASELINES = ("popularity", "lru")


def make_user_policy(name: str, lam: float = 0.0, seed: int = 0):
    """User baseline by name (see :data:`USER_BASELINES`)."""
    table = {"local-only": LocalOnly, "edge-only": EdgeOnly, "greedy": Greedy,
             "random": lambda: RandomUser(seed), "lagrangian": lambda: LagrangianUser(lam)}
    if name not in table:
        raise ValueError(f"unknown user baseline {name!r}; known: {', '.join(USER_BASELINES)}")
    return table[name]()


def make_deployment_policy(name: str):
    """Deployment baseline by name (see :data:`DEPLOYMENT_BASELINES`)."""
    table = {"popularity": PopularityDeployment, "lru": LRUDeployment}
    if name not in table:
        raise ValueError(f"unknown deployment baseline {name!r}; known: {', '.join(DEPLOYMENT_BASELINES)}")
    return table[name]()
