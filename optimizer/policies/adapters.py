"""Trained networks as the environment's policy protocols, for ``evaluate`` and the benchmarks.

A run directory's policies come from :func:`optimizer.algos.trained.load_policies` (it needs the
trainer's agents and checkpoint format, so it lives above this package, not in it)::

    dep, usr, alloc, env_cfg = load_policies("runs/NAME")
    env = EdgeEnv(env_cfg, catalog, num_envs=B, seed=s)
    optimizer.evaluate.run_episodes(env, dep, usr, alloc, episodes, seed)

By default the adapters act greedily (mode of each distribution: argmax server and split, greedy
auto-regressive decoding, Dirichlet mean); ``deterministic=False`` samples as during training.
Heuristic-MAPPO-L checkpoints return its heuristic deployment (LRU) and allocation (equal share).
"""

from __future__ import annotations


import torch

from common.errors import UserInputError
from optimizer.policies.allocation import AllocationActor, user_tokens
from optimizer.policies.deployment import DeploymentActorCritic, deployment_inputs
from optimizer.policies.user import UserActor


def _check_width(what: str, got: int, expected: int) -> None:
    if got != expected:
        raise UserInputError(f"checkpoint: the {what} has size {got} here but {expected} in training; "
                             "evaluate with the env config and profiles the policy was trained on")


class LearnedDeployment:
    """DeploymentPolicy: auto-regressive GRU decoding per server (C7 holds by construction)."""

    def __init__(self, net: DeploymentActorCritic, deterministic: bool = True) -> None:
        self.net, self.deterministic = net.eval(), deterministic

    @torch.no_grad()
    def deploy(self, env, obs) -> torch.Tensor:
        B, J, _, I, _ = env.dims
        _check_width("service count I", I, self.net.num_services)
        demand, prev = deployment_inputs(obs, I)
        sample = self.net.act(demand.reshape(B * J, -1), prev.reshape(B * J, -1),
                              obs.storage_bytes.reshape(B * J), obs.model_bytes, self.deterministic)
        return sample.deployment.view(B, J, I)


class LearnedUser:
    """UserPolicy: server and split from the MAPPO actor under the env's masks."""

    def __init__(self, actor: UserActor, local_dim: int, deterministic: bool = True) -> None:
        self.actor, self.local_dim, self.deterministic = actor.eval(), local_dim, deterministic

    @torch.no_grad()
    def act(self, env, obs) -> tuple[torch.Tensor, torch.Tensor]:
        _check_width("user observation", obs.local.shape[-1], self.local_dim)
        server, split, _ = self.actor.act(obs.local, obs.server_mask, obs.split_mask, self.deterministic)
        return server, split


class LearnedAllocation:
    """AllocationPolicy: attention shares (compute, bandwidth) over each server's users."""

    def __init__(self, actor: AllocationActor, deterministic: bool = True) -> None:
        self.actor, self.deterministic = actor.eval(), deterministic

    @torch.no_grad()
    def allocate(self, env, obs) -> tuple[torch.Tensor, torch.Tensor]:
        _, _, _, I, Z = env.dims
        tokens = user_tokens(obs.tokens, I, env.cfg.input_batch[1], Z)
        shares, _ = self.actor.act(tokens, obs.assoc_mask, self.deterministic)
        return shares[..., 0], shares[..., 1]
