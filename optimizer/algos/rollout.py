"""Data collection of Algorithm 1 (lines 5–13): T slots on each of the B batched env copies.

Per slot: (every ΔT) deployment macro-actions for all B·J servers, then user actions for all B·K users,
then allocation shares for all B·J servers, then ``env.step`` — tensors over copies and agents, no
Python loop over users. Episodes continue across iterations (T = ``rollout_slots`` may be a part of
an episode); at the end of the rollout the critics are evaluated on the state reached, so GAE
bootstraps the truncated return whether the episode goes on or hit its time limit.

Deployment reward (per decision, summed over its ΔT slots):
- ``eq24``: R^dep_j = μ_hit H_j − μ_mig C^mig_j of the env (per server);
- ``team``: every server of a copy gets −(1 + λ) · (misses / requests) · τ_fail / τ̄ − ω · mean_j C^mig_j:
  the delay the period's misses cost (a miss waits τ_fail), in units of τ̄ and weighted like the users'
  delay cost, minus a migration term that cannot dominate (ω = 0.01 per second: redeploying every
  server, ≈ 90 s, costs 0.9, a 10 % miss rate costs 1.0 at λ = 0).
- ``users``: every server of a copy gets the users' mean reward R^usr (eq. 25) summed over the period's
  slots, / 100, minus the same migration term: the deployment is paid for what its placement costs the
  users (a replica near them cuts their transmit energy), with a miss priced at R^fail as the users are.
With ``charge_misses_to_deployment`` a request no server hosts costs its user τ̄ in the Lagrangian cost
(nothing the user does changes it); the λ update still uses the true mean delay.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch.profiler import record_function

from optimizer.algos.agents import Agents, ValueNormalisers
from optimizer.algos.buffers import Trajectory
from optimizer.env import system_model as sm


@dataclass
class Rollout:
    """One iteration's trajectories, bootstrap values (raw units) and per-slot env metrics."""

    user: Trajectory
    alloc: Trajectory | None
    dep: Trajectory | None
    bootstrap_reward: torch.Tensor      # (B, K) V^R of the state after the last slot
    bootstrap_cost: torch.Tensor        # (B, K) V^C
    bootstrap_alloc: torch.Tensor | None  # (B, J)
    bootstrap_dep: torch.Tensor | None    # (B, J)
    metrics: dict[str, torch.Tensor] = field(default_factory=dict)   # name → (T, B)
    delay_s: torch.Tensor | None = None  # (T, B, K) τ_k: the constraint's cost, misses included


@dataclass
class RewardSettings:
    team: bool = True
    users: bool = False         # team migration term + the users' mean R^usr instead of the miss penalty
    migration_weight: float = 0.01
    charge_misses: bool = True
    lam: float = 0.0


def _hosted(env, server: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(hosted on the chosen server, hosted anywhere), each (B, K) bool, before the step."""
    B, J, K, I, _ = env.dims
    service = env.request_service
    on_chosen = env.deployment.view(B, J * I).gather(1, server * I + service)
    anywhere = env.deployment.any(1).gather(1, service)
    return on_chosen, anywhere


@torch.no_grad()
def collect(env, agents: Agents, norms: ValueNormalisers, slots: int,
            rewards: RewardSettings | None = None) -> Rollout:
    """Run ``slots`` slots from the env's current state under the current (stochastic) policies."""
    rewards = rewards or RewardSettings()
    cfg = env.cfg
    B, J, K, I, Z = env.dims
    T = slots
    D = -(-T // cfg.delta_t)
    user = Trajectory(T)
    alloc = Trajectory(T) if agents.allocation is not None else None
    dep = Trajectory(D) if agents.deployment_layer is not None else None
    metrics: dict[str, torch.Tensor] = {}
    delay = torch.zeros(T, B, K, device=env.device)
    tau_bar, tau_fail = cfg.cost.delay_limit_s, cfg.reward.tau_fail_s
    misses = torch.zeros(B, device=env.device)
    requests = 0
    d = -1
    for t in range(T):
        if env.deployment_due:
            d += 1
            if dep is not None and d > 0 and rewards.team and not rewards.users:
                dep.add(d - 1, "reward", _miss_penalty(misses, requests, rewards, tau_fail, tau_bar, J))
            misses.zero_()
            requests = 0
            before = env.deployment
            with record_function("rollout:deploy_act"):
                x = _deploy(agents, env, dep, d)
            if dep is not None and rewards.team:
                mig = sm.migration_cost_s(x, before, env.catalog.model_bytes, env.cloud_rate_bps)
                dep.add(d, "reward", (-rewards.migration_weight * mig.mean(-1, keepdim=True)).expand(B, J))
        with record_function("rollout:user_obs"):
            uo = env.user_observation()
        with record_function("rollout:user_act"):
            server, split = agents.user_layer.act(env, uo, user, t)
        with record_function("rollout:alloc_act"):
            ao = env.allocation_observation(server, split)
            shares = _allocate(agents, env, ao, server, split, alloc, t)
        with record_function("rollout:env_step"):
            on_chosen, anywhere = _hosted(env, server)
            res = env.step(server, split, shares[..., 0], shares[..., 1])
        cost = res.user_cost
        if rewards.charge_misses:
            cost = torch.where(anywhere, cost, torch.full_like(cost, tau_bar))
        user.put(t, reward=res.user_reward, cost=cost)
        delay[t] = res.user_cost
        if alloc is not None:
            alloc.put(t, reward=res.alloc_reward)
        if dep is not None and not rewards.team:
            dep.add(d, "reward", res.dep_reward)
        if dep is not None and rewards.users:
            dep.add(d, "reward", (res.user_reward.mean(-1, keepdim=True) / 100.0).expand(B, J))
        misses += (~on_chosen).sum(-1)
        requests += K
        for name, value in res.metrics.items():
            if name not in metrics:
                metrics[name] = torch.zeros(T, B, device=env.device)
            metrics[name][t] = value
    if dep is not None and rewards.team and not rewards.users:
        dep.add(d, "reward", _miss_penalty(misses, requests, rewards, tau_fail, tau_bar, J))

    # critics' values of every stored step, in one pass per layer (they do not act)
    with record_function("rollout:values"):
        return _finish(env, agents, norms, user, alloc, dep, metrics, delay)


def _finish(env, agents: Agents, norms: ValueNormalisers, user: Trajectory, alloc: Trajectory | None,
            dep: Trajectory | None, metrics: dict[str, torch.Tensor], delay: torch.Tensor) -> Rollout:
    """The critics' values of every stored step and the bootstrap values of the state reached."""
    agents.user_layer.store_values(user, norms.user_reward, norms.user_cost)
    if alloc is not None:
        alloc.data["value"] = norms.allocation.denormalise(agents.allocation.value(alloc.tokens, alloc.assoc))
    if dep is not None:
        agents.deployment_layer.store_values(dep, norms.deployment)
    # bootstrap: values of the state reached after the last slot
    uo = env.user_observation()
    local = agents.user_layer.local(env, uo)
    boot_r, boot_c = agents.user_critics(local, uo.glob)
    boot_alloc = boot_dep = None
    if alloc is not None:
        server, split, _ = agents.user_actor.act(local, uo.server_mask, uo.split_mask)
        ao = env.allocation_observation(server, split)
        boot_alloc = norms.allocation.denormalise(agents.allocation.value(agents.allocation.tokens(ao),
                                                                          ao.assoc_mask))
    if dep is not None:
        boot_dep = norms.deployment.denormalise(agents.deployment_layer.value(env, env.deployment_observation()))
    return Rollout(user=user, alloc=alloc, dep=dep, bootstrap_reward=norms.user_reward.denormalise(boot_r),
                   bootstrap_cost=norms.user_cost.denormalise(boot_c), bootstrap_alloc=boot_alloc,
                   bootstrap_dep=boot_dep, metrics=metrics, delay_s=delay)


def _miss_penalty(misses, requests, rewards: RewardSettings, tau_fail, tau_bar, J) -> torch.Tensor:
    rate = misses / max(requests, 1)
    return (-(1.0 + rewards.lam) * rate * tau_fail / tau_bar).unsqueeze(-1).expand(-1, J)


def _deploy(agents: Agents, env, dep: Trajectory | None, d: int) -> torch.Tensor:
    obs = env.deployment_observation()
    if agents.deployment_layer is None:
        x = agents.heuristic_deployment.deploy(env, obs)
    else:
        x, _, fields = agents.deployment_layer.act(env, obs)
        dep.put(d, **fields)
    env.deploy(x)
    return env.deployment


def _allocate(agents: Agents, env, ao, server, split, alloc: Trajectory | None, t: int) -> torch.Tensor:
    """Shares (B, J, K, 2) [compute, bandwidth]."""
    if agents.allocation is None:
        compute, bandwidth = agents.heuristic_allocation.allocate(env, ao)
        return torch.stack([compute, bandwidth], dim=-1)
    shares, fields = agents.allocation.act(env, ao, server, split)
    alloc.put(t, **fields)
    return shares
