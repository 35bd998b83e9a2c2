"""Data collection of Algorithm 1 (lines 5–13): one episode on each of the B batched env copies.

Per slot: (every ΔT) deployment macro-actions for all B·J servers at once, then user actions for all
B·K users, then allocation shares for all B·J servers, then ``env.step`` — tensors over copies and
agents, no Python loop over users or servers. At the episode's time limit the critics are evaluated
on the state reached, so GAE bootstraps the truncated return (the episode does not terminate).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from optimizer.algos.agents import Agents, ValueNormalisers
from optimizer.algos.buffers import AllocationBuffer, DeploymentBuffer, UserBuffer
from optimizer.env.metrics import SLOT_METRIC_NAMES as METRIC_NAMES
from optimizer.policies.allocation import user_tokens
from optimizer.policies.deployment import deployment_inputs



@dataclass
class Rollout:
    """One iteration's trajectories, bootstrap values (raw units) and per-slot env metrics."""

    user: UserBuffer
    alloc: AllocationBuffer | None
    dep: DeploymentBuffer | None
    bootstrap_reward: torch.Tensor      # (B, K) V^R of the state after the last slot
    bootstrap_cost: torch.Tensor        # (B, K) V^C
    bootstrap_alloc: torch.Tensor | None  # (B, J)
    bootstrap_dep: torch.Tensor | None    # (B, J)
    metrics: dict[str, torch.Tensor]    # name → (T, B)
    dep_reward_total: torch.Tensor      # (B, J) Σ R^dep over the episode


def _deploy(agents: Agents, env, dep: DeploymentBuffer | None, d: int, norms: ValueNormalisers,
            deterministic: bool = False):
    B, J, _, I, _ = env.dims
    obs = env.deployment_observation()
    if agents.deployment is None:
        env.deploy(agents.heuristic_deployment.deploy(env, obs))
        return
    demand, prev = deployment_inputs(obs, I)
    sample = agents.deployment.act(demand.reshape(B * J, -1), prev.reshape(B * J, -1),
                                   obs.storage_bytes.reshape(B * J), obs.model_bytes, deterministic)
    env.deploy(sample.deployment.view(B, J, I))
    if dep is not None:
        dep.demand[d], dep.prev_deployment[d], dep.storage[d] = demand, prev[:, 0], obs.storage_bytes
        dep.store(d, sample, B, J)
        dep.value[d] = norms.deployment.denormalise(sample.value.view(B, J))


def _allocate(agents: Agents, env, ao, deterministic: bool = False):
    """Shares (B, J, K, 2), log π (B, J) or None, integer user tokens (B, K, 3)."""
    _, _, _, I, Z = env.dims
    tokens = user_tokens(ao.tokens, I, env.cfg.input_batch[1], Z)
    if agents.alloc_actor is None:
        compute, bandwidth = agents.heuristic_allocation.allocate(env, ao)
        return torch.stack([compute, bandwidth], dim=-1), None, tokens
    shares, logp = agents.alloc_actor.act(tokens, ao.assoc_mask, deterministic)
    return shares, logp, tokens


@torch.no_grad()
def collect(env, agents: Agents, norms: ValueNormalisers, seed: int) -> Rollout:
    """Reset every copy with ``seed`` and run one full episode under the current (stochastic) policies."""
    env.reset(seed=seed)
    cfg = env.cfg
    B, J, K, I, Z = env.dims
    T = cfg.slots_per_episode
    D = -(-T // cfg.delta_t)
    device = env.device
    uo = env.user_observation()
    user = UserBuffer.empty(T, B, K, J, Z, uo.local.shape[-1], uo.glob.shape[-1], device)
    alloc = AllocationBuffer.empty(T, B, J, K, device) if agents.alloc_actor is not None else None
    dep = None
    if agents.deployment is not None:
        choices = I + int(agents.deployment.stop_action)
        dep = DeploymentBuffer.empty(D, B, J, I, choices, env.server_storage_bytes.dtype, device)
    metrics = {name: torch.zeros(T, B, device=device) for name in METRIC_NAMES}
    dep_total = torch.zeros(B, J, device=device)
    for t in range(T):
        d = t // cfg.delta_t
        if env.deployment_due:
            _deploy(agents, env, dep, d, norms)
        uo = env.user_observation()
        server, split, logp = agents.user_actor.act(uo.local, uo.server_mask, uo.split_mask)
        v_reward, v_cost = agents.user_critics(uo.local, uo.glob)
        ao = env.allocation_observation(server, split)
        shares, alloc_logp, tokens = _allocate(agents, env, ao)
        res = env.step(server, split, shares[..., 0], shares[..., 1])

        user.local[t], user.glob[t] = uo.local, uo.glob
        user.server_mask[t], user.split_mask[t] = uo.server_mask, uo.split_mask
        user.server[t], user.split[t], user.logp[t] = server, split, logp
        user.value_reward[t] = norms.user_reward.denormalise(v_reward)
        user.value_cost[t] = norms.user_cost.denormalise(v_cost)
        user.reward[t], user.cost[t] = res.user_reward, res.user_cost
        if alloc is not None:
            alloc.tokens[t], alloc.assoc[t] = tokens, ao.assoc_mask
            alloc.shares[t], alloc.logp[t] = shares, alloc_logp
            alloc.value[t] = norms.allocation.denormalise(agents.alloc_critic(tokens, ao.assoc_mask))
            alloc.reward[t] = res.alloc_reward
        if dep is not None:
            dep.reward[d] += res.dep_reward
        dep_total += res.dep_reward
        for name in METRIC_NAMES:
            metrics[name][t] = res.metrics[name]

    # time-limit bootstrap: values of the state reached after the last slot
    uo = env.user_observation()
    boot_r, boot_c = agents.user_critics(uo.local, uo.glob)
    boot_alloc = boot_dep = None
    if alloc is not None:
        server, split, _ = agents.user_actor.act(uo.local, uo.server_mask, uo.split_mask)
        ao = env.allocation_observation(server, split)
        tokens = user_tokens(ao.tokens, I, cfg.input_batch[1], Z)
        boot_alloc = norms.allocation.denormalise(agents.alloc_critic(tokens, ao.assoc_mask))
    if dep is not None:
        obs = env.deployment_observation()
        demand, prev = deployment_inputs(obs, I)
        sample = agents.deployment.act(demand.reshape(B * J, -1), prev.reshape(B * J, -1),
                                       obs.storage_bytes.reshape(B * J), obs.model_bytes)
        boot_dep = norms.deployment.denormalise(sample.value.view(B, J))
    return Rollout(user=user, alloc=alloc, dep=dep,
                   bootstrap_reward=norms.user_reward.denormalise(boot_r),
                   bootstrap_cost=norms.user_cost.denormalise(boot_c),
                   bootstrap_alloc=boot_alloc, bootstrap_dep=boot_dep, metrics=metrics,
                   dep_reward_total=dep_total)
