"""Heuristic policies (no learning), batched over copies and users (paper Sec. V-A baselines).

Deployment: :class:`PopularityDeployment`, :class:`LRUDeployment` (both fill storage greedily, C7).
User (association + split): :class:`LocalOnly` (z = L_i), :class:`EdgeOnly` (z = 0), :class:`Greedy`
(deepest split meeting τ̄ under an equal-share estimate), :class:`RandomUser`, and the strong reference
:class:`LagrangianUser` (per slot, argmin over (server, split) of cost + λ·delay under equal share;
λ tuned by :func:`calibrate_lagrangian` to meet τ̄ on average).
Allocation: :class:`EqualShare`, :class:`SqrtShare` (the closed-form shares that minimise a server's
summed compute and transfer delay) and :class:`BestShare` (per server, whichever of the two gives the
lower summed delay). Association of the simple baselines is "channel-based": the strongest-channel
server among those the user's server mask allows (i.e. hosting the service).

Every baseline is registered by name with :func:`register_baseline`, the way the zoo registers models;
:func:`make_baseline` builds one, :func:`baseline_names` lists a layer's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Literal

import torch

from optimizer.env import AllocObs, DeploymentObs, EdgeEnv, UserObs
from optimizer.env.system_model import BITS_PER_BYTE, UserOutcome

Layer = Literal["deployment", "user", "allocation"]


@dataclass(frozen=True)
class BaselineSpec:
    """A registered heuristic: its layer, how to build it, and (users) whether it takes a tuned λ and
    which allocation it runs with by default."""
    name: str
    layer: Layer
    factory: Callable[..., Any]
    calibrated: bool = False
    allocation: str = "equal"


_REGISTRY: dict[Layer, dict[str, BaselineSpec]] = {"deployment": {}, "user": {}, "allocation": {}}


def register_baseline(name: str, layer: Layer, calibrated: bool = False, allocation: str = "equal"):
    """Class decorator: make the heuristic available by ``name`` to ``evaluate`` and the trainer.

    ``calibrated`` user baselines take ``lam`` (tuned by :func:`calibrate_lagrangian` before evaluation);
    ``allocation`` names the allocation baseline it runs with by default.
    """
    def add(cls):
        if name in _REGISTRY[layer]:
            raise ValueError(f"{layer} baseline {name!r} is registered twice")
        _REGISTRY[layer][name] = BaselineSpec(name, layer, cls, calibrated, allocation)
        return cls
    return add


def baseline_names(layer: Layer) -> tuple[str, ...]:
    """The registered baselines of a layer, in registration order."""
    return tuple(_REGISTRY[layer])


def baseline_spec(layer: Layer, name: str) -> BaselineSpec:
    if name not in _REGISTRY[layer]:
        raise ValueError(f"unknown {layer} baseline {name!r}; known: {', '.join(_REGISTRY[layer])}")
    return _REGISTRY[layer][name]


def make_baseline(layer: Layer, name: str, lam: float = 0.0, seed: int = 0):
    """Build a registered baseline; ``lam`` goes to calibrated ones, ``seed`` to those with ``reset``."""
    spec = baseline_spec(layer, name)
    policy = spec.factory(lam) if spec.calibrated else spec.factory()
    if hasattr(policy, "reset"):
        policy.reset(seed)
    return policy


def fill_keys(score: torch.Tensor, model_bytes: torch.Tensor) -> torch.Tensor:
    """The order :func:`greedy_fill` takes services in, as float64 keys: ``score``, ties to smaller models."""
    tie = -model_bytes / model_bytes.max().clamp_min(1.0) * 1e-6
    return score.double() + tie.double()


def greedy_fill(score: torch.Tensor, model_bytes: torch.Tensor, storage_bytes: torch.Tensor) -> torch.Tensor:
    """Deploy services in decreasing ``score`` (B, J, I), skipping any that no longer fit (C7).
    Ties go to smaller models. A loop over the I services, vectorised over copies and servers."""
    order = fill_keys(score, model_bytes).argsort(dim=-1, descending=True, stable=True)
    x = torch.zeros_like(score, dtype=torch.bool)
    used = torch.zeros_like(storage_bytes)
    for n in range(order.shape[-1]):
        cand = order[..., n:n + 1]
        size = model_bytes[cand].squeeze(-1)
        fits = used + size <= storage_bytes
        x.scatter_(-1, cand, fits.unsqueeze(-1))
        used = used + fits * size
    return x


@register_baseline("popularity", "deployment")
class PopularityDeployment:
    """Services by this server's share of the last period's requests h_j (eq. 14), system-wide
    popularity r as a tie-break (weight ``global_weight``). Ranking every server by r alone makes all
    servers hold the same popular set and leaves the tail unserved (measured: 92 % vs 99 % success)."""

    def __init__(self, global_weight: float = 0.01) -> None:
        self.global_weight = global_weight

    def scores(self, obs: DeploymentObs) -> torch.Tensor:
        """h_{j,i} + w·r_i (B, J, I): the order in which each server takes services."""
        I = obs.model_bytes.shape[0]
        return obs.local[..., I:2 * I] + self.global_weight * obs.local[..., :I]

    def deploy(self, env: EdgeEnv, obs: DeploymentObs) -> torch.Tensor:
        return greedy_fill(self.scores(obs), obs.model_bytes, obs.storage_bytes)


@register_baseline("lru", "deployment")
class LRUDeployment:
    """Keep the most recently requested services of each server (ties: most recent system-wide)."""

    def deploy(self, env: EdgeEnv, obs: DeploymentObs) -> torch.Tensor:
        recent = env.last_request_slot.double()                           # (B, J, I), −1 = never
        system = recent.max(dim=1, keepdim=True).values
        score = recent * (env.cfg.slots_per_episode + 2) + system
        return greedy_fill(score, obs.model_bytes, obs.storage_bytes)


@register_baseline("equal", "allocation")
class EqualShare:
    """f_{j,k} = f_j / |U_j|, B_{j,k} = B_j / |U_j| for the users associated with server j."""

    def allocate(self, env: EdgeEnv, obs: AllocObs) -> tuple[torch.Tensor, torch.Tensor]:
        assoc = obs.assoc_mask.float()
        share = assoc / assoc.sum(-1, keepdim=True).clamp_min(1.0)
        return share, share


def sqrt_share(load: torch.Tensor, assoc: torch.Tensor) -> torch.Tensor:
    """Shares s_k ∝ √a_k over each server's users (B, J, K), the minimiser of Σ_k a_k / s_k subject to
    Σ_k s_k = 1 (Lagrange: a_k / s_k² equal for all k). A server whose users all have a_k = 0 shares equally."""
    root = load.clamp_min(0.0).sqrt() * assoc
    total = root.sum(-1, keepdim=True)
    equal = assoc / assoc.sum(-1, keepdim=True).clamp_min(1.0)
    return torch.where(total > 0, root / total.clamp_min(1e-30), equal)


def sqrt_shares(env: EdgeEnv, server: torch.Tensor, split: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Closed-form compute and bandwidth shares (B, J, K) for the users' choices (B, K).

    Compute: τ^E_k = D^in_k Ω^E_k / (s_k f_j), so s_k ∝ √(D^in_k Ω^E_k). Bandwidth: the download and upload
    times D^U_k / (b_k B_j η^↓_k) + D^in_k D^up_k / (b_k B_j η^↑_k) with the spectral efficiencies η held at
    their equal-share values, so b_k ∝ √(8 D^U_k / η^↓_k + 8 D^in_k D^up_k / η^↑_k).
    """
    assoc = env.association(server).float()
    loads = env.request_loads(server, split)
    compute_load = loads.input_batch * loads.server_work
    transfer = BITS_PER_BYTE * (loads.download_bytes / loads.downlink_se
                                + loads.input_batch * loads.uplink_bytes / loads.uplink_se)
    transfer = torch.where(transfer.isfinite(), transfer, torch.zeros_like(transfer))   # no link: no share helps
    return sqrt_share(compute_load.unsqueeze(1) * assoc, assoc), sqrt_share(transfer.unsqueeze(1) * assoc, assoc)


@register_baseline("sqrt", "allocation")
class SqrtShare:
    """The closed-form shares of :func:`sqrt_shares`."""

    def allocate(self, env: EdgeEnv, obs: AllocObs) -> tuple[torch.Tensor, torch.Tensor]:
        return sqrt_shares(env, obs.server, obs.split)


@register_baseline("best", "allocation")
class BestShare:
    """Per server, equal or square-root shares, whichever gives its users the lower summed delay τ_k
    (eq. 26) this slot. The square-root shares are optimal for fixed spectral efficiencies; the true
    rates depend on the bandwidth through the noise, so either can win."""

    def allocate(self, env: EdgeEnv, obs: AllocObs) -> tuple[torch.Tensor, torch.Tensor]:
        server, split = obs.server, obs.split
        equal = EqualShare().allocate(env, obs)
        root = sqrt_shares(env, server, split)
        assoc = obs.assoc_mask.float()
        delay_equal = (env.outcome(server, split, *equal).delay_s.unsqueeze(1) * assoc).sum(-1)
        delay_root = (env.outcome(server, split, *root).delay_s.unsqueeze(1) * assoc).sum(-1)
        use_root = (delay_root < delay_equal).unsqueeze(-1)
        return torch.where(use_root, root[0], equal[0]), torch.where(use_root, root[1], equal[1])


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


@register_baseline("local-only", "user")
class LocalOnly:
    """Whole model on the device (z = L_i), channel-based association."""

    def act(self, env: EdgeEnv, obs: UserObs) -> tuple[torch.Tensor, torch.Tensor]:
        return channel_server(env, obs), deepest_split(obs)


@register_baseline("edge-only", "user")
class EdgeOnly:
    """Whole model on the server (z = 0), channel-based association."""

    def act(self, env: EdgeEnv, obs: UserObs) -> tuple[torch.Tensor, torch.Tensor]:
        server = channel_server(env, obs)
        return server, torch.zeros_like(server)


@register_baseline("random", "user")
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


def all_splits(env: EdgeEnv, server: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Candidates (B, K, Z): the given server with every split point."""
    Z = env.dims[4]
    splits = torch.arange(Z, device=env.device).expand(*server.shape, Z)
    return server.unsqueeze(-1).expand(*server.shape, Z), splits


@register_baseline("greedy", "user")
class Greedy:
    """Strongest-channel server hosting the service; deepest split whose equal-share delay estimate
    meets τ̄ (the fastest split when none does). Plain split points only (it knows no defenses)."""

    def act(self, env: EdgeEnv, obs: UserObs) -> tuple[torch.Tensor, torch.Tensor]:
        server = channel_server(env, obs)
        cand_server, cand_split = all_splits(env, server)
        est = env.estimate_outcome(cand_server, cand_split, users_per_server(server, env.dims[1]))
        plain = obs.split_mask & ~env.catalog.defended.index_select(0, env.request_service.reshape(-1)) \
            .view_as(obs.split_mask)
        delay = torch.where(plain, est.delay_s, torch.full_like(est.delay_s, math.inf))
        meets = delay <= env.cfg.cost.delay_limit_s
        z = torch.arange(delay.shape[-1], device=env.device)
        deepest_ok = torch.where(meets, z, torch.full_like(z, -1)).max(-1).values
        split = torch.where(deepest_ok >= 0, deepest_ok, delay.argmin(-1))
        return server, split


def lagrangian_score(est: UserOutcome, lam: float, env: EdgeEnv) -> torch.Tensor:
    """μ1 C^priv + μ2 e + λ τ per candidate, plus −R^fail for a candidate that fails (miss or time-out):
    the negative of eq. 25's reward without its delay term, so a candidate is priced as the user is paid."""
    spent = est.spent(env.cfg.cost)              # μ1 C^priv + μ2 e (+ a defense option's accuracy cost)
    fail = torch.where(est.served, torch.zeros_like(spent), torch.full_like(spent, -env.cfg.reward.reward_fail))
    return spent + fail + lam * est.delay_s


@register_baseline("lagrangian", "user", calibrated=True, allocation="best")
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
        cand_server, cand_split = all_splits(env, server)
        est = env.estimate_outcome(cand_server, cand_split, users_per_server(server, J))
        score = torch.where(obs.split_mask, lagrangian_score(est, self.lam, env), torch.full_like(est.delay_s, math.inf))
        return server, score.argmin(-1)


@dataclass
class Calibration:
    """Result of :func:`calibrate_lagrangian`: λ and the calibration statistic per λ tried."""
    lam: float
    tried: list[tuple[float, float]]


def calibrate_lagrangian(delay_of: Callable[[float], float], delay_limit_s: float, steps: int = 8,
                         lam_max: float = 1e4) -> Calibration:
    """Smallest λ (to a factor 8^(1/2^steps)) whose delay statistic meets τ̄, by bisection on log λ.

    ``delay_of(λ)`` runs calibration episodes (on seeds apart from the evaluation's) and returns the
    statistic that must stay ≤ τ̄ (``evaluate`` passes the upper confidence bound of the mean delay);
    it is assumed non-increasing in λ. λ = 0 is returned when it already meets τ̄;
    λ_max when nothing does (the limit is then out of reach of this heuristic).
    """
    tried: list[tuple[float, float]] = []

    def delay(lam: float) -> float:
        value = delay_of(lam)
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
