"""Episode runner and statistics. Baselines and learned policies plug in through the same protocols.

    result = run_episodes(env, deployment, user, allocation, episodes=10, seed=0)
    result.summary()   # metric → Summary(mean, ci95, n)

Each copy of a batched env gives one episode per round; ``episodes`` copy-episodes are run in
ceil(episodes / B) rounds, the first reset with ``seed``. A sample is one copy-episode's mean over
slots of the per-slot metrics (:mod:`optimizer.env.metrics`; a slot where nobody was served has no
served cost and is left out of that mean), plus the median and 95th percentile of τ_k over all of the
episode's requests. The 95 % interval is Student's t over those samples (``nan`` for one sample, shown
``n/a``). The delay limit (C8) holds when the mean delay over all samples is ≤ τ̄. ``per_user`` keeps
each user's mean ``charged_cost`` per copy-episode, the per-user distribution of the paper's Fig. 6.
Policies with a ``reset(seed)`` method are reset with the episode seed before each round.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import torch
from scipy import stats
from tqdm import tqdm

from optimizer import baselines
from optimizer.env import AllocObs, DeploymentObs, EdgeEnv, UserObs
from optimizer.env.metrics import METRIC_NAMES, SLOT_METRIC_NAMES, delay_quantiles, user_quantiles


class DeploymentPolicy(Protocol):
    def deploy(self, env: EdgeEnv, obs: DeploymentObs) -> torch.Tensor: ...


class UserPolicy(Protocol):
    def act(self, env: EdgeEnv, obs: UserObs) -> tuple[torch.Tensor, torch.Tensor]: ...


class AllocationPolicy(Protocol):
    def allocate(self, env: EdgeEnv, obs: AllocObs) -> tuple[torch.Tensor, torch.Tensor]: ...


@dataclass
class Summary:
    mean: float
    ci95: float          # half-width of the 95 % confidence interval of the mean
    n: int


def delay_upper_bound(samples: np.ndarray) -> float:
    """One-sided 95 % upper confidence bound of the mean (Student's t); the mean itself for one sample."""
    n = len(samples)
    mean = float(np.mean(samples))
    if n < 2:
        return mean
    return mean + float(stats.t.ppf(0.95, n - 1) * np.std(samples, ddof=1) / math.sqrt(n))


def summarise(samples: np.ndarray) -> Summary:
    n = len(samples)
    mean = float(np.mean(samples))
    if n < 2:
        return Summary(mean, math.nan, n)
    half = float(stats.t.ppf(0.975, n - 1) * np.std(samples, ddof=1) / math.sqrt(n))
    return Summary(mean, half, n)


@dataclass
class EvalResult:
    """Per copy-episode means of every metric, and the delay limit τ̄ they are judged against."""
    samples: dict[str, np.ndarray]
    delay_limit_s: float
    extra: dict[str, object] = field(default_factory=dict)
    per_user: np.ndarray | None = None   # (episodes, K): each user's mean charged_cost in each episode (Fig. 6)

    def user_quantiles(self) -> dict[str, float]:
        """:data:`~optimizer.env.metrics.USER_QUANTILE_NAMES` of the per-user costs (users × episodes pooled)."""
        return {} if self.per_user is None else user_quantiles(torch.from_numpy(self.per_user))

    def summary(self) -> dict[str, Summary]:
        return {name: summarise(values) for name, values in self.samples.items()}

    @property
    def delay_ok(self) -> bool:
        """C8: long-term mean delay ≤ τ̄."""
        return float(np.mean(self.samples["delay_s"])) <= self.delay_limit_s

    def to_record(self) -> dict[str, object]:
        record: dict[str, object] = {}
        for name, s in self.summary().items():       # no value / no interval (one episode): null
            record[name] = s.mean if math.isfinite(s.mean) else None
            record[name + "_ci95"] = s.ci95 if math.isfinite(s.ci95) else None
        record["episodes"] = len(self.samples["delay_s"])
        record["delay_limit_s"] = self.delay_limit_s
        record["delay_ok"] = self.delay_ok
        record.update(self.extra)
        return record


def run_slot(env: EdgeEnv, deployment: DeploymentPolicy, user: UserPolicy, allocation: AllocationPolicy):
    """One slot: deploy when due, users act, servers allocate, env steps. Returns the StepResult."""
    if env.deployment_due:
        env.deploy(deployment.deploy(env, env.deployment_observation()))
    server, split = user.act(env, env.user_observation())
    compute, bandwidth = allocation.allocate(env, env.allocation_observation(server, split))
    return env.step(server, split, compute, bandwidth)


@torch.no_grad()
def run_episodes(env: EdgeEnv, deployment: DeploymentPolicy, user: UserPolicy, allocation: AllocationPolicy,
                 episodes: int, seed: int, progress: bool = False) -> EvalResult:
    """Run ``episodes`` copy-episodes and collect their per-episode mean metrics."""
    rounds = math.ceil(episodes / env.num_envs)
    slots = env.cfg.slots_per_episode
    collected: dict[str, list[torch.Tensor]] = {m: [] for m in METRIC_NAMES}
    per_user = []
    bar = tqdm(total=rounds * slots, disable=not progress, leave=False, unit="slot")
    for r in range(rounds):
        env.reset(seed=seed) if r == 0 else env.reset()
        for policy in (deployment, user, allocation):
            if hasattr(policy, "reset"):
                policy.reset(seed * 1000 + r)
        sums = {m: torch.zeros(env.num_envs, device=env.device) for m in SLOT_METRIC_NAMES}
        counts = {m: torch.zeros(env.num_envs, device=env.device) for m in SLOT_METRIC_NAMES}
        delays = []
        user_sums = torch.zeros(env.num_envs, env.dims[2], dtype=torch.float64, device=env.device)
        for _ in range(slots):
            res = run_slot(env, deployment, user, allocation)
            user_sums += res.charged_cost
            for m in SLOT_METRIC_NAMES:    # served_user_cost is NaN in a slot nobody was served: skip it
                value = res.metrics[m]
                sums[m] += value.nan_to_num(0.0)
                counts[m] += value.isfinite()
            delays.append(res.user_cost)                        # τ_k (B, K)
            bar.update(1)
        for m in SLOT_METRIC_NAMES:
            collected[m].append(sums[m] / counts[m])
        per_user.append(user_sums / slots)
        for m, value in delay_quantiles(torch.cat(delays, dim=-1)).items():
            collected[m].append(value)
    bar.close()
    samples = {m: torch.cat(v)[:episodes].double().cpu().numpy() for m, v in collected.items()}
    return EvalResult(samples=samples, delay_limit_s=env.cfg.cost.delay_limit_s,
                      per_user=torch.cat(per_user)[:episodes].cpu().numpy())


CALIBRATION_SEED_OFFSET = 1_000_003   # calibration episodes never share seeds with evaluation ones


def evaluate_baseline(name: str, env: EdgeEnv, episodes: int, seed: int, deployment: str = "popularity",
                      allocation: str | None = None, calibration_episodes: int = 8, bisection_steps: int = 6,
                      progress: bool = False) -> EvalResult:
    """Evaluate a registered user baseline with a deployment and an allocation baseline (``None``: the
    one the user baseline is registered with). A calibrated baseline's λ is first tuned by bisection on
    separate seeds, to the smallest whose upper 95 % confidence bound of the mean delay meets τ̄ (see
    :class:`optimizer.config.EvaluateConfig`; recorded in ``extra``)."""
    spec = baselines.baseline_spec("user", name)
    allocation = allocation or spec.allocation
    dep, alloc = baselines.make_baseline("deployment", deployment), baselines.make_baseline("allocation", allocation)
    extra: dict[str, object] = {"policy": name, "deployment": deployment, "allocation": allocation}
    lam = 0.0
    if spec.calibrated:
        def delay_bound(trial_lam: float) -> float:
            res = run_episodes(env, dep, baselines.make_baseline("user", name, trial_lam), alloc,
                               calibration_episodes, seed + CALIBRATION_SEED_OFFSET)
            return delay_upper_bound(res.samples["delay_s"])
        cal = baselines.calibrate_lagrangian(delay_bound, env.cfg.cost.delay_limit_s, bisection_steps)
        lam = cal.lam
        extra["lambda"] = lam
        extra["calibration"] = [list(t) for t in cal.tried]
    user = baselines.make_baseline("user", name, lam, seed)
    result = run_episodes(env, dep, user, alloc, episodes, seed, progress)
    result.extra.update(extra)
    return result
