"""The HC-MAPPO-L trainer (Algorithm 1); the ablations differ only by their :class:`AlgoSpec`.

One iteration reads top to bottom:
1. collect ``rollout_slots`` slots on each of the B env copies (lines 5–13, :func:`rollout.collect`);
   episodes continue across iterations and a new one starts when the last reached its time limit;
2. GAE for every layer with its own (γ, λ) and time-limit bootstrapping (line 15, :func:`gae.gae`);
3. Lagrangian update of λ from the measured mean delay Ĵ_C (lines 17–18, :mod:`.lagrange`);
4. one PPO routine (:func:`ppo.ppo_update`) for the deployment, user and allocation policies and
   every critic (lines 20–24). The user advantage is A = (Â_R − λ Â_C) / (1 + λ) (eq. 32, 38), with
   Â_R and Â_C standardised separately so λ weighs comparable quantities; the 1 / (1 + λ) keeps the
   step size bounded (as in OmniSafe's PPO-Lag). Without the Lagrangian, A = Â_R.
"""

from __future__ import annotations

import time

import torch
from torch.profiler import record_function

from common.devices import resolve_device
from common.errors import UserInputError
from common.precision import autocast, use_bf16
from optimizer.algos import checkpoint, ppo
from optimizer.algos.ablations import get_spec
from optimizer.algos.agents import Agents, EnvDims, ValueNormalisers, build_agents
from optimizer.algos.config import TrainConfig
from optimizer.algos.env_state import env_state, load_env_state
from optimizer.algos.gae import gae, next_values_from
from optimizer.algos.lagrange import make_multiplier
from optimizer.algos.rollout import Rollout, RewardSettings, collect
from optimizer.algos.warm_start import warm_start
from optimizer.env import EdgeEnv
from optimizer.env.metrics import delay_quantiles


TRAIN_SEED_BASE = 500_000_000


class TrainingDiverged(RuntimeError):
    """An update left non-finite parameters; the networks must not be used or checkpointed."""


def _advantages(rewards, values, bootstrap, horizon: tuple[float, float]):
    """GAE over one rollout per copy; its last step is bootstrapped with the value of the state reached
    (the episode goes on, or was truncated by its time limit: either way not a termination)."""
    end = torch.zeros_like(rewards, dtype=torch.bool)
    end[-1] = True
    gamma, lam = horizon
    return gae(rewards, values, next_values_from(values, bootstrap), end, torch.zeros_like(end), gamma, lam)


def rollout_length(cfg: TrainConfig, env_cfg) -> int:
    """Slots per copy per iteration; must divide the episode and cover whole ΔT periods."""
    episode = env_cfg.slots_per_episode
    slots = min(cfg.rollout_slots, episode) or episode
    if episode % slots or (slots < episode and slots % env_cfg.delta_t):
        raise UserInputError(f"train config: 'rollout_slots' = {cfg.rollout_slots} must divide the episode "
                             f"({episode} slots) and be a multiple of ΔT = {env_cfg.delta_t} (or 0: whole "
                             "episodes)")
    return slots


class Trainer:
    """Owns the env copies, networks, optimisers, normalisers, λ and RNG of one training run."""

    def __init__(self, cfg: TrainConfig, env_cfg, catalog) -> None:
        cfg.validate()
        self.cfg, self.env_cfg = cfg, env_cfg
        self.spec = get_spec(cfg.algo)
        self.slots = rollout_length(cfg, env_cfg)
        self.device = resolve_device(cfg.device)
        self.bf16 = use_bf16(self.device, cfg.precision)
        torch.manual_seed(cfg.seed)
        self.env = EdgeEnv(env_cfg, catalog, num_envs=cfg.num_envs, device=self.device, seed=cfg.seed)
        self.env.reset(seed=self.episode_seed(0))
        self.episodes = 1                            # episodes started (the env is in episode 0)
        self.dims = EnvDims.from_env(self.env, cfg.user_observes_own_device, cfg.user_observes_split_estimates)
        self.agents: Agents = build_agents(self.spec, cfg, self.dims, self.device, self.env.catalog.model_bytes)
        self.optimisers = {name: torch.optim.Adam(module.parameters(), lr=cfg.lr, eps=1e-5, fused=True)
                           for name, module in self.agents.modules().items()}
        self.norms = ValueNormalisers.create(self.device)
        self.lagrange = make_multiplier(cfg)
        if not self.spec.lagrangian:
            self.lagrange.value = 0.0
        self.generator = torch.Generator().manual_seed(cfg.seed)
        self.iteration = 0

    def episode_seed(self, episode: int) -> int:
        """Fresh geometry and capacities every episode, reproducible from (seed, episode), and far
        from the small seeds evaluation uses."""
        return TRAIN_SEED_BASE + self.cfg.seed * 1_000_000 + episode

    @property
    def lam(self) -> float:
        return self.lagrange.value if self.spec.lagrangian else 0.0

    def _settings(self, entropy_coef: float) -> ppo.PPOSettings:
        cfg = self.cfg
        return ppo.PPOSettings(cfg.ppo_epochs, cfg.num_minibatches, cfg.clip, entropy_coef, cfg.value_coef,
                               cfg.max_grad_norm)

    def _optimisers(self, *names: str):
        return [(self.optimisers[n], list(self.agents.modules()[n].parameters())) for n in names]

    # ---------------------------------------------------------------------------------------------
    def train_iteration(self) -> dict[str, float]:
        cfg = self.cfg
        start = time.perf_counter()
        warm = {}
        if self.iteration == 0:
            with record_function("phase:warm_start"):
                warm = warm_start(self)
        if self.env.truncated_flag:
            self.env.reset(seed=self.episode_seed(self.episodes))
            self.episodes += 1
        rewards = RewardSettings(team=cfg.deployment_reward in ("team", "users"),
                                 users=cfg.deployment_reward == "users",
                                 migration_weight=cfg.deployment_migration_weight,
                                 charge_misses=cfg.charge_misses_to_deployment, lam=self.lam)
        with autocast(self.device, self.bf16), record_function("phase:rollout"):
            rollout = collect(self.env, self.agents, self.norms, self.slots, rewards)
        collected = time.perf_counter()
        stats = {**warm, **self._episode_stats(rollout)}
        if self.spec.lagrangian:
            self.lagrange.update(float(rollout.delay_s.mean()), self.env_cfg.cost.delay_limit_s)
        updates = [("user", self._update_users, rollout.user), ("alloc", self._update_allocation, rollout.alloc),
                   ("dep", self._update_deployment, rollout.dep)]
        with autocast(self.device, self.bf16):      # the losses themselves are float32 (autocast rules)
            for layer, update, buffer in updates:
                if buffer is not None:               # None: a heuristic plays this layer
                    began = time.perf_counter()
                    with record_function(f"phase:{layer}_update"):
                        stats.update(update(rollout))
                    stats[f"{layer}_update_s"] = time.perf_counter() - began
        end = time.perf_counter()
        modules = self.agents.modules()
        finite = torch.stack([torch.stack([torch.isfinite(p).all() for p in m.parameters()]).all()
                              for m in modules.values()]).tolist()          # one read, not one per tensor
        broken = [name for name, ok in zip(modules, finite) if not ok]
        if broken:
            raise TrainingDiverged(f"iteration {self.iteration + 1}: non-finite parameters in "
                                   f"{', '.join(broken)} after the update")
        slots = self.slots * cfg.num_envs
        stats.update({"lambda": self.lam, "rollout_s": collected - start, "update_s": end - collected,
                      "iteration_s": end - start, "env_slots_per_s": slots / max(collected - start, 1e-9)})
        self.iteration += 1
        stats["iteration"] = self.iteration
        return stats

    def _episode_stats(self, rollout: Rollout) -> dict[str, float]:
        stats = {name: values.nanmean() for name, values in rollout.metrics.items()}
        delays = rollout.delay_s.permute(1, 0, 2).reshape(rollout.delay_s.shape[1], -1)   # (B, T·K) τ_k
        stats.update({name: value.mean() for name, value in delay_quantiles(delays).items()})
        stats["user_reward"] = rollout.user.reward.mean()
        if rollout.dep is not None:
            stats["dep_reward"] = rollout.dep.reward.mean()
        if rollout.alloc is not None:
            stats["alloc_reward"] = rollout.alloc.reward.mean()
        values = torch.stack([v.double() for v in stats.values()]).tolist()       # one read, every value exact
        return dict(zip(stats, values))

    # ---------------------------------------------------------------------------------------------
    def _update_users(self, rollout: Rollout) -> dict[str, float]:
        cfg, buf, norms = self.cfg, rollout.user, self.norms
        horizon = cfg.horizon("user")
        adv_r, ret_r = _advantages(buf.reward, buf.value_reward, rollout.bootstrap_reward, horizon)
        adv_c, ret_c = _advantages(buf.cost, buf.value_cost, rollout.bootstrap_cost, horizon)
        lam = self.lam
        advantage = ppo.standardise(adv_r)
        if self.spec.lagrangian:
            advantage = (advantage - lam * ppo.standardise(adv_c)) / (1.0 + lam)
        norms.user_reward.update(ret_r)
        norms.user_cost.update(ret_c)
        samples = self.agents.user_layer.samples(buf, advantage, norms.user_reward.normalise(ret_r),
                                                 norms.user_cost.normalise(ret_c))
        return ppo.ppo_update(samples, self.agents.user_layer.forward,
                              self._optimisers("user_actor", "user_critics"), self._settings(cfg.entropy_user),
                              self.generator, "user")

    def _update_allocation(self, rollout: Rollout) -> dict[str, float]:
        cfg, buf = self.cfg, rollout.alloc
        adv, ret = _advantages(buf.reward, buf.value, rollout.bootstrap_alloc, cfg.horizon("allocation"))
        weight = (buf.assoc.sum(-1) >= 2).float()
        adv = ppo.standardise(adv, weight) if weight.sum() > 0 else adv
        self.norms.allocation.update(ret)
        samples = self.agents.allocation.samples(buf, adv, self.norms.allocation.normalise(ret))
        return ppo.ppo_update(samples, self.agents.allocation.forward,
                              self._optimisers("alloc_actor", "alloc_critic"),
                              self._settings(cfg.entropy_allocation), self.generator, "alloc")

    def _update_deployment(self, rollout: Rollout) -> dict[str, float]:
        cfg, buf = self.cfg, rollout.dep
        adv, ret = _advantages(buf.reward, buf.value, rollout.bootstrap_dep, cfg.horizon("deployment"))
        adv = ppo.standardise(adv)
        self.norms.deployment.update(ret)
        samples = self.agents.deployment_layer.samples(buf, adv, self.norms.deployment.normalise(ret))
        return ppo.ppo_update(samples, self.agents.deployment_layer.forward, self._optimisers("deployment"),
                              self._settings(cfg.entropy_deployment), self.generator, "dep")

    # ---------------------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """Everything needed to continue bit-for-bit: networks, optimisers, λ, normalisers, RNGs."""
        state = {
            "iteration": self.iteration,
            "modules": {k: m.state_dict() for k, m in self.agents.modules().items()},
            "optimisers": {k: o.state_dict() for k, o in self.optimisers.items()},
            "normalisers": self.norms.state_dict(),
            "lagrange": self.lagrange.state_dict(),
            "rng": {"torch": torch.get_rng_state(), "generator": self.generator.get_state()},
            "episodes": self.episodes,
            "env": env_state(self.env),
        }
        if self.device.type == "cuda":
            state["rng"]["cuda"] = torch.cuda.get_rng_state(self.device)
        return state

    def load_state_dict(self, state: dict) -> None:
        self.iteration = int(state["iteration"])
        self.episodes = int(state["episodes"])
        load_env_state(self.env, state["env"])
        checkpoint.load_modules(self.agents.modules(), state["modules"])
        for key, optimiser in self.optimisers.items():
            optimiser.load_state_dict(state["optimisers"][key])
        self.norms.load_state_dict(state["normalisers"])
        self.lagrange.load_state_dict(state["lagrange"])
        torch.set_rng_state(state["rng"]["torch"])
        self.generator.set_state(state["rng"]["generator"])
        if "cuda" in state["rng"] and self.device.type == "cuda":
            torch.cuda.set_rng_state(state["rng"]["cuda"], self.device)
