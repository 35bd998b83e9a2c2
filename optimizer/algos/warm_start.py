"""Optional warm start: behaviour cloning of learned layers from the heuristics before PPO.

``warm_start = true`` (``cli.py train --warm-start``) clones the users from the Lagrangian heuristic;
``warm_start_deployment = true`` clones the in-turn deployment from the popularity heuristic. Both are
off in the paper's preset.

1. When the users are cloned, the heuristic's λ is calibrated as ``optimizer.evaluate`` does (smallest λ
   whose mean delay meets τ̄, bisection on log λ), on env copies seeded apart from training and
   evaluation; a deployment-only clone plays at λ = 1.
2. The heuristics then play ``warm_start_slots`` slots per copy (popularity deployment, the better of equal
   and square-root shares, as they are evaluated). Kept: every user's observation, masks and choice
   (σ_k, z_k); every deployment decision's state and each server's popularity picks in the order the
   popularity fill takes them (the in-turn policy's macro-action, eq. 19).
3. Each cloned layer is fitted by maximum likelihood of those choices (cross-entropy under the same masks;
   for the deployment the per-step log-probs of the picks), ``warm_start_epochs`` × ``num_minibatches``
   steps with the trainer's optimiser.
The allocation needs no warm start: the square-root tilt starts at the closed-form share.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from optimizer import baselines
from optimizer.algos.buffers import Trajectory
from optimizer.algos.ppo import minibatches
from optimizer.env import EdgeEnv
from optimizer.policies.deployment_in_turn import DeploymentState, fill_in_order, step_masks

WARM_START_SEED = 900_000_000
UNCALIBRATED_LAMBDA = 1.0


@dataclass
class DeploymentDemos:
    """Popularity decisions as in-turn macro-actions, one entry per decision (B copies each)."""

    states: list[DeploymentState] = field(default_factory=list)
    deployments: list[torch.Tensor] = field(default_factory=list)     # (B, J, I) bool
    actions: list[torch.Tensor] = field(default_factory=list)         # (B, J, I) picks in fill order
    active: list[torch.Tensor] = field(default_factory=list)          # (B, J, I) bool

    def add(self, state: DeploymentState, score: torch.Tensor) -> torch.Tensor:
        """Record the popularity fill of ``score`` (B, J, I) and return its deployment."""
        B, J, I = score.shape
        keys = baselines.fill_keys(score, state.model_bytes)
        chosen, picks, counts = fill_in_order(keys.reshape(B * J, I),
                                              state.storage_bytes.reshape(B * J), state.model_bytes)
        active = torch.arange(I, device=score.device) < counts.unsqueeze(-1)
        self.states.append(state)
        self.deployments.append(chosen.view(B, J, I))
        self.actions.append(torch.where(active, picks, torch.zeros_like(picks)).view(B, J, I))
        self.active.append(active.view(B, J, I))
        return chosen.view(B, J, I)

    def batch(self) -> tuple[DeploymentState, torch.Tensor, torch.Tensor, torch.Tensor]:
        cat = lambda name: torch.cat([getattr(s, name) for s in self.states])      # noqa: E731
        state = DeploymentState(cat("request_share"), cat("server_share"), cat("previous"), cat("storage_bytes"),
                                self.states[0].model_bytes)
        return state, torch.cat(self.deployments), torch.cat(self.actions), torch.cat(self.active)


@torch.no_grad()
def _play(env: EdgeEnv, lam: float, slots: int, store: Trajectory | None = None, user_layer=None,
          deployment_demos: DeploymentDemos | None = None, deployment_layer=None) -> float:
    """Mean delay of ``slots`` slots of the heuristics from the env's current state (stored if asked)."""
    deployment = baselines.PopularityDeployment()
    allocation = baselines.make_baseline("allocation", "best")
    user = baselines.make_baseline("user", "lagrangian", lam)
    total = 0.0
    for t in range(slots):
        if env.truncated_flag:
            env.reset()
        if env.deployment_due:
            obs = env.deployment_observation()
            if deployment_demos is None:
                env.deploy(deployment.deploy(env, obs))
            else:
                env.deploy(deployment_demos.add(deployment_layer.state(env, obs), deployment.scores(obs)))
        uo = env.user_observation()
        server, split = user.act(env, uo)
        if store is not None:
            store.put(t, local=user_layer.local(env, uo), server_mask=uo.server_mask, split_mask=uo.split_mask,
                      server=server, split=split)
        compute, bandwidth = allocation.allocate(env, env.allocation_observation(server, split))
        total += float(env.step(server, split, compute, bandwidth).user_cost.mean())
    return total / slots


def warm_start(trainer) -> dict[str, float]:
    """Clone the heuristics into the layers ``trainer.cfg`` names; returns diagnostics."""
    cfg, env_cfg = trainer.cfg, trainer.env_cfg
    agents = trainer.agents
    clone_users = cfg.warm_start
    clone_deployment = cfg.warm_start_deployment and agents.deployment_layer is not None
    if not (clone_users or clone_deployment):
        return {}
    env = EdgeEnv(env_cfg, trainer.env.catalog, num_envs=cfg.num_envs, device=trainer.device,
                  seed=WARM_START_SEED + cfg.seed)
    slots = cfg.warm_start_slots

    def mean_delay(lam: float) -> float:
        env.reset(seed=WARM_START_SEED + cfg.seed)
        return _play(env, lam, slots)

    # the users' λ matters only to the users' clone; the deployment's states (who asks which server
    # for what) hardly depend on it, so a deployment-only clone plays at λ = 1 without calibrating
    lam = (baselines.calibrate_lagrangian(mean_delay, env_cfg.cost.delay_limit_s, steps=4).lam
           if clone_users else UNCALIBRATED_LAMBDA)
    env.reset(seed=WARM_START_SEED + cfg.seed + 1)
    demos = Trajectory(slots) if clone_users else None
    deployment_demos = DeploymentDemos() if clone_deployment else None
    teacher_delay = _play(env, lam, slots, demos, agents.user_layer, deployment_demos, agents.deployment_layer)
    out = {"warm_start_lambda": lam, "warm_start_teacher_delay_s": teacher_delay}
    if clone_users:
        data = demos.flat(("local", "server_mask", "split_mask", "server", "split"), 2)
        actor = agents.user_actor

        def user_nll(idx: torch.Tensor) -> torch.Tensor:
            logp, _ = actor.evaluate(*(data[k][idx] for k in ("local", "server_mask", "split_mask", "server",
                                                              "split")))
            return -logp.mean()

        first, last = _fit(trainer, "user_actor", data["local"].shape[0], user_nll)
        out.update(warm_start_first_nll=first, warm_start_last_nll=last)
    if clone_deployment:
        state, deployment, actions, active = deployment_demos.batch()
        masks = step_masks(actions, active, state.storage_bytes, state.model_bytes)   # once, not per step
        net = agents.deployment

        def deployment_nll(idx: torch.Tensor) -> torch.Tensor:
            part = DeploymentState(state.request_share[idx], state.server_share[idx], state.previous[idx],
                                   state.storage_bytes[idx], state.model_bytes)
            logp = net.step_logp(part, deployment[idx], actions[idx], active[idx], masks[idx])
            return -logp.sum() / active[idx].sum().clamp_min(1)          # mean per pick

        first, last = _fit(trainer, "deployment", deployment.shape[0], deployment_nll)
        out.update(warm_start_deployment_first_nll=first, warm_start_deployment_last_nll=last)
    return out


def _fit(trainer, name: str, size: int, nll) -> tuple[float, float]:
    """Minimise ``nll(minibatch indices)`` for the trainer's module ``name``; (first, last) losses."""
    cfg = trainer.cfg
    module, optimiser = trainer.agents.modules()[name], trainer.optimisers[name]
    for group in optimiser.param_groups:
        group["lr"] = cfg.warm_start_lr
    losses = []
    for _ in range(cfg.warm_start_epochs):
        for idx in minibatches(size, cfg.num_minibatches, trainer.generator, trainer.device):
            loss = nll(idx)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(module.parameters(), cfg.max_grad_norm)
            optimiser.step()
            losses.append(float(loss.detach()))
    for group in optimiser.param_groups:
        group["lr"] = cfg.lr
    return losses[0], losses[-1]
