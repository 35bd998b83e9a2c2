"""PettingZoo ParallelEnv over the K user agents of one environment copy (B = 1).

Agents ``user_0 … user_{K−1}`` act every slot with a = (server σ_k, split z_k) ∈ MultiDiscrete([J, Z])
(eq. 20). Deployment (every ΔT slots) and allocation are driven by the policies the caller passes (any
objects with ``deploy(env, obs)`` / ``allocate(env, obs)``, e.g. ``optimizer.baselines.PopularityDeployment()``
and ``EqualShare()``, or learned layers). The wrapper does not import the baselines: they import the
environment, so the arrow points one way.

Observation per agent: ``{"observation": eq. 16 vector (d_loc,) float32, "action_mask": (server mask
(J,) int8, split mask (Z,) int8)}`` — the tuple form ``MultiDiscrete.sample(mask=...)`` takes. A split
beyond L_i of the requested model is clamped to L_i (the mask says which are meaningful).
Reward: R^usr (eq. 25). ``infos[agent]``: ``cost`` = τ_k (eq. 27), ``served``. Episodes end by
truncation after ``cfg.slots_per_episode`` slots; nothing terminates.
"""

from __future__ import annotations

import functools
from typing import Any, Protocol

import numpy as np
import torch
from gymnasium import spaces
from pettingzoo import ParallelEnv

from optimizer.config import EnvConfig
from optimizer.env.batched import EdgeEnv
from optimizer.env.catalog import ServiceCatalog
from optimizer.env.observations import AllocObs, DeploymentObs


class DeploymentPolicy(Protocol):
    def deploy(self, env: EdgeEnv, obs: DeploymentObs) -> torch.Tensor: ...


class AllocationPolicy(Protocol):
    def allocate(self, env: EdgeEnv, obs: AllocObs) -> tuple[torch.Tensor, torch.Tensor]: ...


class EdgeParallelEnv(ParallelEnv):
    metadata = {"name": "splitpriv_edge_v0", "render_modes": []}

    def __init__(self, cfg: EnvConfig, catalog: ServiceCatalog, deployment: DeploymentPolicy,
                 allocation: AllocationPolicy, device: str = "cpu", seed: int = 0) -> None:
        self.env = EdgeEnv(cfg, catalog, num_envs=1, device=device, seed=seed)
        self.deployment = deployment
        self.allocation = allocation
        _, J, K, I, Z = self.env.dims
        self.possible_agents = [f"user_{k}" for k in range(K)]
        self.agents: list[str] = []
        self._index = {a: k for k, a in enumerate(self.possible_agents)}
        n_in = cfg.input_batch[1] - cfg.input_batch[0] + 1
        self._obs_dim = I + n_in + J * I + (J if cfg.observe_channel else 0)
        self._shape = (J, Z)
        self._seed = seed

    @functools.lru_cache(maxsize=None)
    def observation_space(self, agent: str) -> spaces.Space:
        J, Z = self._shape
        return spaces.Dict({
            "observation": spaces.Box(-np.inf, np.inf, shape=(self._obs_dim,), dtype=np.float32),
            "action_mask": spaces.Tuple((spaces.MultiBinary(J), spaces.MultiBinary(Z))),
        })

    @functools.lru_cache(maxsize=None)
    def action_space(self, agent: str) -> spaces.Space:
        return spaces.MultiDiscrete(list(self._shape))

    def _deploy_if_due(self) -> None:
        if self.env.deployment_due:
            self.env.deploy(self.deployment.deploy(self.env, self.env.deployment_observation()))

    def _observe(self) -> dict[str, dict[str, Any]]:
        uo = self.env.user_observation()
        local = uo.local[0].cpu().numpy().astype(np.float32)
        server_mask = uo.server_mask[0].cpu().numpy().astype(np.int8)
        split_mask = uo.split_mask[0].cpu().numpy().astype(np.int8)
        return {a: {"observation": local[k], "action_mask": (server_mask[k], split_mask[k])}
                for a, k in self._index.items()}

    def reset(self, seed: int | None = None, options: dict | None = None):
        if seed is not None:
            self._seed = seed
            self.env.reset(seed=seed)
        elif self.env.episode < 0:
            self.env.reset(seed=self._seed)
        else:
            self.env.reset()
        self.agents = list(self.possible_agents)
        self._deploy_if_due()
        return self._observe(), {a: {} for a in self.agents}

    def step(self, actions: dict[str, Any]):
        if not self.agents:
            raise RuntimeError("episode over; call reset()")
        _, J, K, I, Z = self.env.dims
        server = torch.zeros(1, K, dtype=torch.long)
        split = torch.zeros(1, K, dtype=torch.long)
        for agent, action in actions.items():
            k = self._index[agent]
            server[0, k], split[0, k] = int(action[0]), int(action[1])
        device = self.env.device
        limit = (self.env.catalog.split_valid.sum(-1) - 1)[self.env.request_service].cpu()   # L_i, or its last option
        server, split = server.clamp(0, J - 1).to(device), torch.minimum(split, limit).to(device)
        compute, bandwidth = self.allocation.allocate(self.env, self.env.allocation_observation(server, split))
        res = self.env.step(server, split, compute, bandwidth)
        reward = res.user_reward[0].cpu().tolist()
        cost = res.user_cost[0].cpu().tolist()
        served = res.served[0].cpu().tolist()
        done = bool(res.truncated[0])
        if not done:
            self._deploy_if_due()
        obs = self._observe()
        agents = self.agents
        rewards = {a: reward[self._index[a]] for a in agents}
        infos = {a: {"cost": cost[self._index[a]], "served": served[self._index[a]]} for a in agents}
        terminations = {a: False for a in agents}
        truncations = {a: done for a in agents}
        obs = {a: obs[a] for a in agents}
        if done:
            self.agents = []
        return obs, rewards, terminations, truncations, infos

    def render(self) -> None:
        return None

    def close(self) -> None:
        return None
