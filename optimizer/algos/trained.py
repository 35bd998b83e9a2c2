"""Trained networks as the environment's policy protocols, for ``evaluate`` and the benchmarks.

A run directory's policies come from :func:`optimizer.algos.trained.load_policies` (it needs the
trainer's agents and checkpoint format, so it lives above this package, not in it)::

    dep, usr, alloc, env_cfg = load_policies("runs/NAME")
    env = EdgeEnv(env_cfg, catalog, num_envs=B, seed=s)
    optimizer.evaluate.run_episodes(env, dep, usr, alloc, episodes, seed)

By default the adapters act greedily (mode of each distribution: argmax server and split, greedy
deployment decoding, the mean of the allocation distribution); ``deterministic=False`` samples as
during training. Heuristic-MAPPO-L checkpoints return its heuristic deployment (LRU) and allocation
(equal share). The adapters act through the same layer objects as the trainer (:mod:`.layers`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch

from common.errors import UserInputError
from optimizer.algos import checkpoint
from optimizer.algos.ablations import get_spec
from optimizer.algos.agents import EnvDims, build_agents
from optimizer.algos.config import TrainConfig
from optimizer.algos.layers import AllocationLayer, UserLayer
from optimizer.config import EnvConfig, from_dict


def _check_width(what: str, got: int, expected: int) -> None:
    if got != expected:
        raise UserInputError(f"checkpoint: the {what} has size {got} here but {expected} in training; "
                             "evaluate with the env config and profiles the policy was trained on")


class LearnedDeployment:
    """DeploymentPolicy: the trained deployment layer (in-turn or GRU); C7 holds by construction."""

    def __init__(self, layer, deterministic: bool = True) -> None:
        self.layer, self.deterministic = layer, deterministic
        self.generator = torch.Generator()
        layer.net.eval()

    def reset(self, seed: int) -> None:
        self.generator.manual_seed(seed + 1)

    @torch.no_grad()
    def deploy(self, env, obs) -> torch.Tensor:
        _check_width("service count I", env.dims[3], self.layer.net.num_services)
        generator = self.generator if env.device.type == "cpu" else None
        return self.layer.act(env, obs, self.deterministic, generator)[0]


class LearnedUser:
    """UserPolicy: server and split from the MAPPO actor under the env's masks.

    ``deterministic=False`` samples (from its own generator, seeded by :meth:`reset`): the trained users
    play a mixed strategy, and their argmax sends every user with similar features to the same server
    (measured: greedy 4.16 s with 4.9 % time-outs where the sampled policy trained at 2.2 s)."""

    def __init__(self, layer: UserLayer, local_dim: int, deterministic: bool = True) -> None:
        self.layer, self.actor, self.local_dim = layer, layer.actor.eval(), local_dim
        self.deterministic = deterministic
        self.generator = torch.Generator()

    def reset(self, seed: int) -> None:
        self.generator.manual_seed(seed)

    @torch.no_grad()
    def act(self, env, obs) -> tuple[torch.Tensor, torch.Tensor]:
        local = self.layer.local(env, obs)
        _check_width("user observation", local.shape[-1], self.local_dim)
        generator = self.generator if local.device.type == "cpu" else None
        server, split, _ = self.actor.act(local, obs.server_mask, obs.split_mask, self.deterministic, generator)
        return server, split


class LearnedAllocation:
    """AllocationPolicy: the trained allocation layer (square-root tilt or attention)."""

    def __init__(self, layer: AllocationLayer, deterministic: bool = True) -> None:
        self.layer, self.deterministic = layer, deterministic
        layer.actor.eval()

    @torch.no_grad()
    def allocate(self, env, obs) -> tuple[torch.Tensor, torch.Tensor]:
        shares, _ = self.layer.act(env, obs, obs.server, obs.split, self.deterministic)
        return shares[..., 0], shares[..., 1]


def learned_policies(agents, local_dim: int, deterministic: bool = True,
                     sample_users: bool = False, sample_deployment: bool = False) -> tuple[Any, Any, Any]:
    """(deployment, user, allocation) policies of built agents; heuristics where they play a layer.
    ``sample_users`` / ``sample_deployment``: that layer samples its trained (stochastic) policy from a
    generator seeded per evaluation round while the others stay greedy."""
    deployment = (LearnedDeployment(agents.deployment_layer, deterministic and not sample_deployment)
                  if agents.deployment_layer is not None else agents.heuristic_deployment)
    allocation = (LearnedAllocation(agents.allocation, deterministic) if agents.allocation is not None
                  else agents.heuristic_allocation)
    user = LearnedUser(agents.user_layer, local_dim, deterministic and not sample_users)
    return deployment, user, allocation


#: The sizes a trained network is built for (:class:`EnvDims`), with what sets each. The number of users K
#: is not among them: every user runs the same actor, so a run evaluates with any K.
_FITTED_SIZES = (("num_servers", "J servers", "env.num_servers"),
                 ("num_services", "I services", "the profile tables × env.services_per_model"),
                 ("num_splits", "Z split points", "the profile tables"),
                 ("max_input_size", "largest input batch", "env.input_batch"),
                 ("local_dim", "user observation width", "J, Z and env.observe_channel"))


@dataclass(frozen=True)
class TrainedRun:
    """A trained run's policies, its env config and the sizes its networks were built for."""

    deployment: Any
    user: Any
    allocation: Any
    env_config: EnvConfig
    dims: EnvDims
    train_config: TrainConfig
    profiles: str            # the run's profile folder, as a path from the current folder (or "synthetic")

    def check_fits(self, env, name: str) -> None:
        """One-line UserInputError, before any episode, when ``env`` has other sizes than the run was trained
        for (a mismatch otherwise surfaces mid-episode as a tensor shape error)."""
        here = EnvDims.from_env(env, self.train_config.user_observes_own_device,
                                self.train_config.user_observes_split_estimates)
        wrong = [(label, getattr(self.dims, field), getattr(here, field), source)
                 for field, label, source in _FITTED_SIZES if getattr(self.dims, field) != getattr(here, field)]
        if wrong:
            sizes = "; ".join(f"{label}: {trained} in training, {now} here (set by {source})"
                              for label, trained, now, source in wrong)
            raise UserInputError(f"--checkpoint {name}: the run does not fit this environment ({sizes}); evaluate "
                                 f"with the profiles it was trained on (--profiles {self.profiles}) and its env sizes")


def load_trained(checkpoint_dir: str | os.PathLike, device: str | torch.device = "cpu",
                 deterministic: bool = True, sample_users: bool = False,
                 sample_deployment: bool = False) -> TrainedRun:
    """The policies of a trained run directory (its ``checkpoint.pt``, else its ``actors.pt``) or checkpoint
    file, with what they were trained for."""
    saved = checkpoint.load(checkpoint_dir, map_location=device, actors_ok=True)
    cfg = TrainConfig(**saved["train_config"])
    dims = EnvDims(**saved["dims"])
    agents = build_agents(get_spec(cfg.algo), cfg, dims, torch.device(device))
    checkpoint.load_modules(agents.modules(), saved["trainer"]["modules"], saved.get("actors_only", False))
    env_cfg = from_dict(EnvConfig, saved["env_config"])
    policies = learned_policies(agents, dims.local_dim, deterministic, sample_users, sample_deployment)
    return TrainedRun(*policies, env_cfg, dims, cfg, checkpoint.profiles_of(saved, checkpoint_dir))


def load_policies(checkpoint_dir: str | os.PathLike, device: str | torch.device = "cpu",
                  deterministic: bool = True, sample_users: bool = False,
                  sample_deployment: bool = False) -> tuple[Any, Any, Any, Any]:
    """(deployment, user, allocation, env_config) of a trained run directory or checkpoint file."""
    run = load_trained(checkpoint_dir, device, deterministic, sample_users, sample_deployment)
    return run.deployment, run.user, run.allocation, run.env_config
