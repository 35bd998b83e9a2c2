"""The networks (and, for Heuristic-MAPPO-L, the heuristic layers) of one algorithm, with their
value normalisers, built from the env's dimensions and a :class:`TrainConfig`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from optimizer.algos.ablations import AlgoSpec, heuristic_allocation, heuristic_deployment
from optimizer.algos.config import TrainConfig
from optimizer.algos.layers import (OWN_DEVICE_FEATURES, SPLIT_ESTIMATE_FEATURES, AllocationLayer, UserLayer,
                                   deployment_layer)
from optimizer.algos.normalisers import RunningMeanStd
from optimizer.policies.allocation import AllocationActor, AllocationCritic
from optimizer.policies.allocation_correction import SqrtCorrectionActor
from optimizer.policies.deployment import DeploymentActorCritic
from optimizer.policies.deployment_in_turn import InTurnDeployment
from optimizer.policies.user import UserActor, UserCritics


@dataclass(frozen=True)
class EnvDims:
    """What the networks need to know about the environment."""

    num_servers: int       # J
    num_users: int         # K
    num_services: int      # I
    num_splits: int        # Z
    local_dim: int         # d_loc of eq. 16 (+ channel features)
    global_dim: int        # 2K + J·I of eq. 17
    max_input_size: int    # highest D^in
    shared_cols: tuple[int, int] | None   # columns of the local obs equal for all users (vec(X))
    channel_cols: tuple[int, int] | None = None   # the J channel features of the local obs
    split_cols: tuple[int, int] | None = None     # the Z × 3 split estimates (:func:`layers.split_estimates`)

    @classmethod
    def from_env(cls, env, observe_own: bool = False, observe_splits: bool = False) -> "EnvDims":
        """Sizes from the env; vec(X) and channel columns of the user observation from its published
        layout; the user's own features (Z + 4 columns, :func:`layers.own_features`) come after it, then
        its split estimates (Z · 3 columns)."""
        B, J, K, I, Z = env.dims
        layout = env.user_local_layout
        glob_dim = 2 * K + J * I
        cols = (layout.deployment.start, layout.deployment.stop)
        channel = (layout.channel.start, layout.channel.stop) if layout.channel is not None else None
        width = layout.width + (Z + OWN_DEVICE_FEATURES if observe_own else 0)
        split_cols = None
        if observe_splits:
            split_cols = (width, width + Z * SPLIT_ESTIMATE_FEATURES)
            width = split_cols[1]
        return cls(J, K, I, Z, width, glob_dim, env.cfg.input_batch[1], cols, channel, split_cols)


@dataclass
class Agents:
    """Networks of every learned layer; ``None`` where a heuristic plays that layer."""

    user_actor: UserActor
    user_critics: UserCritics
    deployment: InTurnDeployment | DeploymentActorCritic | None
    alloc_actor: SqrtCorrectionActor | AllocationActor | None
    alloc_critic: AllocationCritic | None
    heuristic_deployment: Any = None
    heuristic_allocation: Any = None
    user_layer: UserLayer | None = None          # the trainer's view of each learned layer
    allocation: AllocationLayer | None = None
    deployment_layer: Any = None

    def modules(self) -> dict[str, nn.Module]:
        named = {"user_actor": self.user_actor, "user_critics": self.user_critics,
                 "deployment": self.deployment, "alloc_actor": self.alloc_actor,
                 "alloc_critic": self.alloc_critic}
        return {k: v for k, v in named.items() if v is not None}


def build_agents(spec: AlgoSpec, cfg: TrainConfig, dims: EnvDims, device: torch.device,
                 model_bytes: torch.Tensor | None = None) -> Agents:
    """Same sizes for every algorithm; only the critics' inputs and the learned layers differ."""
    central = spec.centralised_critics
    agents = Agents(
        user_actor=UserActor(dims.local_dim, dims.num_servers, dims.num_splits, cfg.hidden_user,
                             dims.shared_cols, dims.channel_cols if cfg.user_server_scoring else None,
                             split_cols=dims.split_cols),
        user_critics=UserCritics(dims.local_dim, dims.global_dim, cfg.hidden_user, central,
                                 dims.shared_cols),
        deployment=_deployment(cfg, dims, central) if spec.learned_deployment else None,
        alloc_actor=_allocation(cfg, dims) if spec.learned_allocation else None,
        alloc_critic=(AllocationCritic(dims.num_services, dims.max_input_size, dims.num_splits,
                                       cfg.hidden_allocation, cfg.embedding_dim, centralised=central)
                      if spec.learned_allocation else None),
        heuristic_deployment=None if spec.learned_deployment else heuristic_deployment(),
        heuristic_allocation=None if spec.learned_allocation else heuristic_allocation(),
    )
    for module in agents.modules().values():
        module.to(device)
    agents.user_layer = UserLayer(agents.user_actor, agents.user_critics, cfg.user_observes_own_device,
                                  dims.shared_cols, observe_splits=dims.split_cols is not None)
    if agents.alloc_actor is not None:
        agents.allocation = AllocationLayer(agents.alloc_actor, agents.alloc_critic, dims.num_services,
                                            dims.max_input_size, dims.num_splits)
    agents.deployment_layer = deployment_layer(agents.deployment, model_bytes)
    return agents


def _deployment(cfg: TrainConfig, dims: EnvDims, central: bool) -> nn.Module:
    if cfg.deployment_policy == "in-turn":
        return InTurnDeployment(dims.num_services, dims.num_servers, cfg.hidden_deployment, centralised=central)
    return DeploymentActorCritic(dims.num_services, dims.num_servers, cfg.hidden_deployment,
                                 cfg.deployment_stop_action, centralised=central,
                                 observe_previous=cfg.deployment_observes_previous)


def _allocation(cfg: TrainConfig, dims: EnvDims) -> nn.Module:
    if cfg.allocation_policy == "sqrt-correction":
        return SqrtCorrectionActor(dims.num_services, dims.max_input_size, dims.num_splits,
                                   cfg.hidden_allocation, cfg.embedding_dim, cfg.allocation_correction_bound)
    return AllocationActor(dims.num_services, dims.max_input_size, dims.num_splits, cfg.hidden_allocation,
                           cfg.embedding_dim, cfg.allocation_init_concentration)


@dataclass
class ValueNormalisers:
    """One running normaliser per critic target: user reward, user delay cost, deployment, allocation."""

    user_reward: RunningMeanStd
    user_cost: RunningMeanStd
    deployment: RunningMeanStd
    allocation: RunningMeanStd

    @classmethod
    def create(cls, device: torch.device) -> "ValueNormalisers":
        return cls(*(RunningMeanStd(clip=float("inf"), device=device) for _ in range(4)))

    def state_dict(self) -> dict:
        return {k: getattr(self, k).state_dict() for k in ("user_reward", "user_cost", "deployment",
                                                           "allocation")}

    def load_state_dict(self, state: dict) -> None:
        for key, value in state.items():
            getattr(self, key).load_state_dict(value)
