"""The HC-MAPPO-L trainer (Algorithm 1); the ablations differ only by their :class:`AlgoSpec`.

One iteration reads top to bottom:
1. collect one episode on each of the B env copies (lines 5–13, :func:`rollout.collect`);
2. GAE for every layer with time-limit bootstrapping (line 15, :func:`gae.gae`);
3. Lagrangian update λ ← clip(λ + α_λ (Ĵ_C − τ̄), 0, 100), Ĵ_C = mean per-user delay (lines 17–18);
4. PPO updates of the deployment, user and allocation policies and of every critic (lines 20–24).
   The user advantage is A = (Â_R − λ Â_C) / (1 + λ) (eq. 32, 38), with Â_R and Â_C standardised
   separately so λ weighs comparable quantities; the 1 / (1 + λ) keeps the step size bounded
   (as in OmniSafe's PPO-Lag). Without the Lagrangian, A = Â_R.
"""

from __future__ import annotations

import time

import torch

from common.devices import resolve_device
from common.precision import autocast, use_bf16
from optimizer.algos import ppo
from optimizer.algos.ablations import get_spec
from optimizer.algos.agents import Agents, EnvDims, ValueNormalisers, build_agents
from optimizer.algos.config import TrainConfig
from optimizer.algos.gae import gae, next_values_from
from optimizer.algos.lagrange import LagrangeMultiplier, PIDLagrangeMultiplier
from optimizer.algos.rollout import METRIC_NAMES, Rollout, collect
from optimizer.env import EdgeEnv
from optimizer.env.metrics import delay_quantiles


TRAIN_SEED_BASE = 500_000_000


class TrainingDiverged(RuntimeError):
    """An update left non-finite parameters; the networks must not be used or checkpointed."""


def _advantages(rewards, values, bootstrap, gamma, lam):
    """GAE over one episode per copy: the last step is a time-limit truncation (bootstrapped)."""
    end = torch.zeros_like(rewards, dtype=torch.bool)
    end[-1] = True
    return gae(rewards, values, next_values_from(values, bootstrap), end,
               torch.zeros_like(end), gamma, lam)


class Trainer:
    """Owns the env copies, networks, optimisers, normalisers, λ and RNG of one training run."""

    def __init__(self, cfg: TrainConfig, env_cfg, catalog) -> None:
        cfg.validate()
        self.cfg, self.env_cfg = cfg, env_cfg
        self.spec = get_spec(cfg.algo)
        self.device = resolve_device(cfg.device)
        self.bf16 = use_bf16(self.device, cfg.precision)
        torch.manual_seed(cfg.seed)
        self.env = EdgeEnv(env_cfg, catalog, num_envs=cfg.num_envs, device=self.device, seed=cfg.seed)
        self.env.reset(seed=self.episode_seed(0))
        self.dims = EnvDims.from_env(self.env)
        self.agents: Agents = build_agents(self.spec, cfg, self.dims, self.device)
        self.optimisers = {name: torch.optim.Adam(module.parameters(), lr=cfg.lr, eps=1e-5)
                           for name, module in self.agents.modules().items()}
        self.norms = ValueNormalisers.create(self.device)
        self.lagrange = (PIDLagrangeMultiplier(cfg.lambda_init, cfg.pid_kp, cfg.pid_ki, cfg.pid_kd,
                                               cfg.lambda_max)
                         if cfg.lambda_pid else LagrangeMultiplier(cfg.lambda_init, cfg.lambda_lr,
                                                                   cfg.lambda_max))
        if not self.spec.lagrangian:
            self.lagrange.value = 0.0
        self.generator = torch.Generator().manual_seed(cfg.seed)
        self.iteration = 0

    def episode_seed(self, iteration: int) -> int:
        """Fresh geometry and capacities every iteration, reproducible from (seed, iteration), and
        far from the small seeds evaluation uses."""
        return TRAIN_SEED_BASE + self.cfg.seed * 1_000_000 + iteration

    @property
    def lam(self) -> float:
        return self.lagrange.value if self.spec.lagrangian else 0.0

    # ---------------------------------------------------------------------------------------------
    def train_iteration(self) -> dict[str, float]:
        cfg = self.cfg
        start = time.perf_counter()
        with autocast(self.device, self.bf16):
            rollout = collect(self.env, self.agents, self.norms, self.episode_seed(self.iteration))
        collected = time.perf_counter()
        stats = self._episode_stats(rollout)
        measured_delay = float(rollout.user.cost.mean())
        if self.spec.lagrangian:
            self.lagrange.update(measured_delay, self.env_cfg.cost.delay_limit_s)
        updates = [("user", self._update_users, rollout.user), ("alloc", self._update_allocation, rollout.alloc),
                   ("dep", self._update_deployment, rollout.dep)]
        with autocast(self.device, self.bf16):      # the losses themselves are float32 (autocast rules)
            for layer, update, buffer in updates:
                if buffer is not None:               # None: a heuristic plays this layer
                    began = time.perf_counter()
                    stats.update(update(rollout))
                    stats[f"{layer}_update_s"] = time.perf_counter() - began
        end = time.perf_counter()
        broken = [name for name, module in self.agents.modules().items()
                  if not all(torch.isfinite(p).all() for p in module.parameters())]
        if broken:
            raise TrainingDiverged(f"iteration {self.iteration + 1}: non-finite parameters in "
                                   f"{', '.join(broken)} after the update")
        slots = rollout.user.reward.shape[0] * cfg.num_envs
        stats.update({"lambda": self.lam, "rollout_s": collected - start, "update_s": end - collected,
                      "iteration_s": end - start, "env_slots_per_s": slots / max(collected - start, 1e-9)})
        self.iteration += 1
        stats["iteration"] = self.iteration
        return stats

    def _episode_stats(self, rollout: Rollout) -> dict[str, float]:
        stats = {name: float(rollout.metrics[name].nanmean()) for name in METRIC_NAMES}
        delays = rollout.user.cost.permute(1, 0, 2).reshape(rollout.user.cost.shape[1], -1)   # (B, T·K) τ_k
        stats.update({name: float(value.mean()) for name, value in delay_quantiles(delays).items()})
        stats["user_reward"] = float(rollout.user.reward.mean())
        stats["dep_reward"] = float(rollout.dep_reward_total.mean())
        if rollout.alloc is not None:
            stats["alloc_reward"] = float(rollout.alloc.reward.mean())
        return stats

    # ---------------------------------------------------------------------------------------------
    def _update_users(self, rollout: Rollout) -> dict[str, float]:
        cfg, buf, norms = self.cfg, rollout.user, self.norms
        adv_r, ret_r = _advantages(buf.reward, buf.value_reward, rollout.bootstrap_reward, cfg.gamma,
                                   cfg.gae_lambda)
        adv_c, ret_c = _advantages(buf.cost, buf.value_cost, rollout.bootstrap_cost, cfg.gamma,
                                   cfg.gae_lambda)
        lam = self.lam
        advantage = ppo.standardise(adv_r)
        if self.spec.lagrangian:
            advantage = (advantage - lam * ppo.standardise(adv_c)) / (1.0 + lam)
        norms.user_reward.update(ret_r)
        norms.user_cost.update(ret_c)
        target_r, target_c = norms.user_reward.normalise(ret_r), norms.user_cost.normalise(ret_c)
        T, B, K = buf.reward.shape
        slots = T * B
        flat = lambda x: x.reshape(slots, *x.shape[2:])          # (T, B, ...) → (T·B, ...)
        local, glob = flat(buf.local), flat(buf.glob)
        smask, zmask = flat(buf.server_mask), flat(buf.split_mask)
        server, split = flat(buf.server), flat(buf.split)
        logp_old, adv = flat(buf.logp), flat(advantage)
        target_r, target_c = flat(target_r), flat(target_c)
        actor, critics = self.agents.user_actor, self.agents.user_critics
        log = _Log("user")
        for _ in range(cfg.ppo_epochs):
            for idx in ppo.minibatches(slots, cfg.num_minibatches, self.generator, self.device):
                logp, entropy = actor.evaluate(local[idx], smask[idx], zmask[idx], server[idx], split[idx])
                loss, info = ppo.clipped_surrogate(logp, logp_old[idx], adv[idx], cfg.clip)
                loss = loss - cfg.entropy_user * entropy.mean()
                ppo.optimiser_step(self.optimisers["user_actor"], loss, list(actor.parameters()),
                                   cfg.max_grad_norm)
                v_r, v_c = critics(local[idx], glob[idx])
                v_loss = ppo.value_loss(v_r, target_r[idx]) + ppo.value_loss(v_c, target_c[idx])
                ppo.optimiser_step(self.optimisers["user_critics"], v_loss, list(critics.parameters()),
                                   cfg.max_grad_norm)
                log.add(info, loss=loss.item(), value_loss=v_loss.item(), entropy=entropy.mean().item())
        return log.summary()

    def _update_allocation(self, rollout: Rollout) -> dict[str, float]:
        cfg, buf = self.cfg, rollout.alloc
        adv, ret = _advantages(buf.reward, buf.value, rollout.bootstrap_alloc, cfg.gamma, cfg.gae_lambda)
        # servers with fewer than two users have a point-mass action (log π = 0): no policy gradient
        weight = (buf.assoc.sum(-1) >= 2).float()
        adv = ppo.standardise(adv, weight) if weight.sum() > 0 else adv
        self.norms.allocation.update(ret)
        target = self.norms.allocation.normalise(ret)
        T, B, J = buf.reward.shape
        slots = T * B
        flat = lambda x: x.reshape(slots, *x.shape[2:])
        tokens, assoc, shares = flat(buf.tokens), flat(buf.assoc), flat(buf.shares)
        logp_old, adv, weight, target = flat(buf.logp), flat(adv), flat(weight), flat(target)
        actor, critic = self.agents.alloc_actor, self.agents.alloc_critic
        log = _Log("alloc")
        for _ in range(cfg.ppo_epochs):
            for idx in ppo.minibatches(slots, cfg.num_minibatches, self.generator, self.device):
                logp, entropy = actor.evaluate(tokens[idx], assoc[idx], shares[idx])
                loss, info = ppo.clipped_surrogate(logp, logp_old[idx], adv[idx], cfg.clip, weight[idx])
                loss = loss - cfg.entropy_allocation * ppo.weighted_mean(entropy, weight[idx])
                ppo.optimiser_step(self.optimisers["alloc_actor"], loss, list(actor.parameters()),
                                   cfg.max_grad_norm)
                v_loss = ppo.value_loss(critic(tokens[idx], assoc[idx]), target[idx])
                ppo.optimiser_step(self.optimisers["alloc_critic"], v_loss, list(critic.parameters()),
                                   cfg.max_grad_norm)
                log.add(info, loss=loss.item(), value_loss=v_loss.item(),
                        entropy=ppo.weighted_mean(entropy, weight[idx]).item())
        return log.summary()

    def _update_deployment(self, rollout: Rollout) -> dict[str, float]:
        cfg, buf, net = self.cfg, rollout.dep, self.agents.deployment
        adv, ret = _advantages(buf.reward, buf.value, rollout.bootstrap_dep, cfg.gamma, cfg.gae_lambda)
        adv = ppo.standardise(adv)
        self.norms.deployment.update(ret)
        target = self.norms.deployment.normalise(ret)
        D, B, J = buf.reward.shape
        n = D * B * J
        flat = lambda x: x.reshape(n, *x.shape[3:])
        demand, storage = flat(buf.demand), flat(buf.storage)
        prev = buf.prev_deployment.unsqueeze(2).expand(D, B, J, -1).reshape(n, -1)
        actions, masks, active = flat(buf.actions), flat(buf.step_masks), flat(buf.active)
        logp_old, adv, target = flat(buf.logp), flat(adv), flat(target)
        model_bytes = self.env.catalog.model_bytes
        log = _Log("dep")
        for _ in range(cfg.ppo_epochs):
            for idx in ppo.minibatches(n, cfg.num_minibatches, self.generator, self.device):
                logp, entropy, value = net.evaluate(demand[idx], prev[idx], storage[idx], model_bytes,
                                                    actions[idx], masks[idx], active[idx])
                pg_loss, info = ppo.clipped_surrogate(logp, logp_old[idx], adv[idx], cfg.clip)
                v_loss = ppo.value_loss(value, target[idx])
                loss = pg_loss + cfg.value_coef * v_loss - cfg.entropy_deployment * entropy.mean()
                ppo.optimiser_step(self.optimisers["deployment"], loss, list(net.parameters()),
                                   cfg.max_grad_norm)
                log.add(info, loss=pg_loss.item(), value_loss=v_loss.item(), entropy=entropy.mean().item())
        return log.summary()

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
        }
        if self.device.type == "cuda":
            state["rng"]["cuda"] = torch.cuda.get_rng_state(self.device)
        return state

    def load_state_dict(self, state: dict) -> None:
        self.iteration = int(state["iteration"])
        for key, module in self.agents.modules().items():
            module.load_state_dict(state["modules"][key])
        for key, optimiser in self.optimisers.items():
            optimiser.load_state_dict(state["optimisers"][key])
        self.norms.load_state_dict(state["normalisers"])
        self.lagrange.load_state_dict(state["lagrange"])
        torch.set_rng_state(state["rng"]["torch"])
        self.generator.set_state(state["rng"]["generator"])
        if "cuda" in state["rng"] and self.device.type == "cuda":
            torch.cuda.set_rng_state(state["rng"]["cuda"], self.device)


class _Log:
    """Mean of per-minibatch diagnostics; keeps the first minibatch's ratio deviation (should be 0)."""

    def __init__(self, prefix: str) -> None:
        self.prefix, self.sums, self.count, self.first_ratio_dev = prefix, {}, 0, None

    def add(self, info: dict, **values: float) -> None:
        if self.first_ratio_dev is None:
            self.first_ratio_dev = info["ratio_dev"]
        for key, value in {**info, **values}.items():
            self.sums[key] = self.sums.get(key, 0.0) + value
        self.count += 1

    def summary(self) -> dict[str, float]:
        out = {f"{self.prefix}_{k}": v / max(self.count, 1) for k, v in self.sums.items()}
        out[f"{self.prefix}_first_ratio_dev"] = (float("nan") if self.first_ratio_dev is None
                                                  else self.first_ratio_dev)  # NaN: no minibatch ran
        return out
