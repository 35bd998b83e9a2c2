"""Optional warm start (``warm_start = true``, ``cli.py train --warm-start``): behaviour cloning of
the user layer from the Lagrangian heuristic before PPO. Off by default and in the paper's preset.

1. The heuristic's λ is calibrated as ``optimizer.evaluate`` does (smallest λ whose mean delay meets τ̄,
   bisection on log λ), on env copies seeded apart from training and evaluation.
2. It then plays ``warm_start_slots`` slots per copy (popularity deployment, the better of equal and
   square-root shares, as the heuristic is evaluated); every user's observation, masks and choice
   (σ_k, z_k) are kept.
3. The user actor is fitted to those choices by maximum likelihood under the same masks
   (cross-entropy, ``warm_start_epochs`` epochs × ``num_minibatches``), with the trainer's optimiser.
The deployment and allocation layers need no warm start: the in-turn deployment covers from the first
iteration and the allocation starts at the square-root share.
"""

from __future__ import annotations

import torch

from optimizer import baselines
from optimizer.algos.buffers import Trajectory
from optimizer.algos.ppo import minibatches
from optimizer.env import EdgeEnv

WARM_START_SEED = 900_000_000


@torch.no_grad()
def _play(env: EdgeEnv, lam: float, slots: int, store: Trajectory | None = None, user_layer=None) -> float:
    """Mean delay of ``slots`` slots of the heuristic from the env's current state (stored if asked)."""
    deployment = baselines.make_baseline("deployment", "popularity")
    allocation = baselines.make_baseline("allocation", "best")
    user = baselines.make_baseline("user", "lagrangian", lam)
    total = 0.0
    for t in range(slots):
        if env.truncated_flag:
            env.reset()
        if env.deployment_due:
            env.deploy(deployment.deploy(env, env.deployment_observation()))
        uo = env.user_observation()
        server, split = user.act(env, uo)
        if store is not None:
            store.put(t, local=user_layer.local(env, uo), server_mask=uo.server_mask, split_mask=uo.split_mask,
                      server=server, split=split)
        compute, bandwidth = allocation.allocate(env, env.allocation_observation(server, split))
        total += float(env.step(server, split, compute, bandwidth).user_cost.mean())
    return total / slots


def warm_start_users(trainer) -> dict[str, float]:
    """Clone the calibrated Lagrangian heuristic into ``trainer``'s user actor; returns diagnostics."""
    cfg, env_cfg = trainer.cfg, trainer.env_cfg
    env = EdgeEnv(env_cfg, trainer.env.catalog, num_envs=cfg.num_envs, device=trainer.device,
                  seed=WARM_START_SEED + cfg.seed)
    slots = cfg.warm_start_slots

    def mean_delay(lam: float) -> float:
        env.reset(seed=WARM_START_SEED + cfg.seed)
        return _play(env, lam, slots)

    calibration = baselines.calibrate_lagrangian(mean_delay, env_cfg.cost.delay_limit_s, steps=4)
    env.reset(seed=WARM_START_SEED + cfg.seed + 1)
    demos = Trajectory(slots)
    teacher_delay = _play(env, calibration.lam, slots, demos, trainer.agents.user_layer)
    data = demos.flat(("local", "server_mask", "split_mask", "server", "split"), 2)
    actor, optimiser = trainer.agents.user_actor, trainer.optimisers["user_actor"]
    losses = []
    for _ in range(cfg.warm_start_epochs):
        for idx in minibatches(data["local"].shape[0], cfg.num_minibatches, trainer.generator, trainer.device):
            logp, _ = actor.evaluate(*(data[k][idx] for k in ("local", "server_mask", "split_mask", "server",
                                                              "split")))
            loss = -logp.mean()
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(actor.parameters(), cfg.max_grad_norm)
            optimiser.step()
            losses.append(float(loss.detach()))
    return {"warm_start_lambda": calibration.lam, "warm_start_teacher_delay_s": teacher_delay,
            "warm_start_first_nll": losses[0], "warm_start_last_nll": losses[-1]}
