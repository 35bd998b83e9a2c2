"""A trained run's three layers as the environment's policy protocols (greedy by default).

    dep, usr, alloc, env_cfg = load_policies("runs/NAME")
    optimizer.evaluate.run_episodes(EdgeEnv(env_cfg, catalog, num_envs=B, seed=s), dep, usr, alloc, episodes, seed)
"""

from __future__ import annotations

import os
from typing import Any

import torch

from optimizer.algos import checkpoint
from optimizer.algos.ablations import get_spec
from optimizer.algos.agents import EnvDims, build_agents
from optimizer.algos.config import TrainConfig
from optimizer.config import EnvConfig, from_dict
from optimizer.policies.adapters import LearnedAllocation, LearnedDeployment, LearnedUser


def load_policies(checkpoint_dir: str | os.PathLike, device: str | torch.device = "cpu",
                  deterministic: bool = True) -> tuple[Any, Any, Any, Any]:
    """(deployment, user, allocation, env_config) of a trained run directory or checkpoint file."""
    saved = checkpoint.load(checkpoint_dir, map_location=device)
    cfg = TrainConfig(**saved["train_config"])
    dims = EnvDims(**saved["dims"])
    agents = build_agents(get_spec(cfg.algo), cfg, dims, torch.device(device))
    for key, module in agents.modules().items():
        module.load_state_dict(saved["trainer"]["modules"][key])
    env_cfg = from_dict(EnvConfig, saved["env_config"])
    deployment = (LearnedDeployment(agents.deployment, deterministic) if agents.deployment is not None
                  else agents.heuristic_deployment)
    allocation = (LearnedAllocation(agents.alloc_actor, deterministic) if agents.alloc_actor is not None
                  else agents.heuristic_allocation)
    return deployment, LearnedUser(agents.user_actor, dims.local_dim, deterministic), allocation, env_cfg
