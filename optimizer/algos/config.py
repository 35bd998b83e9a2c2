"""TrainConfig: every hyper-parameter of the trainer in one dataclass (Sec. V-A, Algorithm 1).

Paper values where it gives them (lr 3e-4, clip 0.2, entropy 0.05 for users, λ0 = 0.01, λ ∈ [0, 100],
1000 iterations of 200 slots). The defaults depart from the paper where a measurement says so (README
"Trainer: departures from the paper"): per-layer horizons, the in-turn coverage-aware deployment,
allocation as a bounded correction of the square-root share, a PID Lagrangian on the normalised cost
τ/τ̄, 4 env copies × 50-slot rollouts, 2 epochs × 2 minibatches. The field defaults are what old runs
load with; ``PRESETS["default"]`` adds what came later (users' split estimates; the deployment cloned
from the popularity heuristic and paid the users' reward) and ``PRESETS["paper"]`` restores the paper's
choices (``cli.py train --preset paper``).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from common.errors import UserInputError
from common.limits import SEED_MAX, check_at_most
from common.precision import PRECISIONS
from optimizer.config import EnvConfig, apply_overrides, from_dict

# Far above the paper's budgets (1000 iterations, hidden 256) and inside one process (common/limits.py).
TRAIN_LIMITS = {"seed": SEED_MAX, "iterations": 10**7, "num_envs": 4096, "rollout_slots": 10**6,
                "ppo_epochs": 1000, "num_minibatches": 4096, "hidden_user": 8192, "hidden_deployment": 8192,
                "hidden_allocation": 8192, "embedding_dim": 4096, "warm_start_slots": 10**6,
                "warm_start_epochs": 10**6, "checkpoint_every": 10**7}


@dataclass
class TrainConfig:
    """Hyper-parameters of HC-MAPPO-L and of every ablation (one tuning budget for all)."""

    algo: str = "hc-mappo-l"
    iterations: int = 1000              # Algorithm 1 outer loop
    num_envs: int = 4                   # env copies simulated side by side (batched)
    rollout_slots: int = 50             # slots per copy per iteration (0: one whole episode); episodes
                                        # continue across iterations, so 4 × 50 = 200 slots of experience
    seed: int = 0
    device: str = "cpu"
    precision: str = "auto"             # matmuls in rollouts and updates: auto | bf16 (autocast) | fp32
    # PPO (one routine for all layers)
    lr: float = 3e-4
    clip: float = 0.2
    ppo_epochs: int = 2
    num_minibatches: int = 2
    max_grad_norm: float = 0.5
    value_coef: float = 0.5
    entropy_user: float = 0.05
    entropy_deployment: float = 0.01
    entropy_allocation: float = 0.0
    # Horizons per layer: users and allocation are judged per slot, deployment per ΔT period
    gamma_user: float = 0.0
    gae_lambda_user: float = 0.95
    gamma_allocation: float = 0.0
    gae_lambda_allocation: float = 0.95
    gamma_deployment: float = 0.9       # per decision (ΔT = 10 slots): 0.99^10
    gae_lambda_deployment: float = 0.95
    # Networks
    hidden_user: int = 128            # paper 256: half the width, ≈ 2× faster user update (BENCHMARKS)
    hidden_deployment: int = 64         # in-turn score network (gru: GRU width, paper 256)
    hidden_allocation: int = 64
    user_server_scoring: bool = True    # server logits also from a head shared by all servers (channel)
    user_observes_own_device: bool = True   # users also see their cache and device (ε, Pre, f, P): eq. 16 + Z + 4
    user_observes_split_estimates: bool = False   # + each split's estimated cost and delay (Z·3); on in "default"
    embedding_dim: int = 16             # d_m, d_s (eq. 16) and split embedding (eq. 18 keys)
    # Deployment layer
    deployment_policy: str = "in-turn"  # in-turn (coverage-aware, per-step ratios) | gru (paper, eq. 28-30)
    deployment_reward: str = "team"     # team (misses + migration, shared) | users (users' R^usr + migration) | eq24
    deployment_migration_weight: float = 0.01   # team and users rewards: per second of C^mig (eq. 23)
    deployment_stop_action: bool = False  # gru only: a learned stop action
    deployment_observes_previous: bool = False  # gru only: own x_j(t−ΔT) and coverage (in-turn always)
    # Allocation layer
    allocation_policy: str = "sqrt-correction"   # sqrt-correction (bounded tilt) | attention (paper)
    allocation_correction_bound: float = 0.5     # c: weights within e^{±c} of the square-root share
    allocation_init_concentration: float = 5.0   # attention only: Dirichlet concentration at init
    # Lagrangian (eq. 32-33)
    lambda_init: float = 0.01
    lambda_lr: float = 0.01
    lambda_max: float = 100.0
    lambda_pid: bool = True             # PID Lagrangian (Stooke et al. 2020) instead of dual ascent
    lambda_normalised: bool = True      # the multiplier sees Ĵ_C / τ̄ − 1 instead of Ĵ_C − τ̄ (seconds)
    pid_kp: float = 1.0
    pid_ki: float = 0.05
    pid_kd: float = 0.0
    charge_misses_to_deployment: bool = True   # a request no server hosts: its τ_fail is charged to the
                                               # deployment (team or users reward), not the user's cost
    # Optional warm start: behaviour cloning from the heuristics before PPO (algos/warm_start.py)
    warm_start: bool = False            # the users, from the calibrated Lagrangian heuristic
    warm_start_deployment: bool = False  # the in-turn deployment, from the popularity heuristic
    warm_start_slots: int = 100         # slots per env copy the heuristic plays for the demonstrations
    warm_start_epochs: int = 250        # × num_minibatches steps (500 fit the popularity deployment to
    warm_start_lr: float = 3e-3         # NLL 0.38 per pick); Adam step size while cloning, then back to lr
    # Run directory
    checkpoint_every: int = 10          # and at the last iteration and on Ctrl-C (each write ≈ 35 ms)
    tensorboard: bool = True

    def validate(self) -> None:
        """Raise UserInputError naming the field if a value is out of range."""
        positive = ("iterations", "num_envs", "lr", "ppo_epochs", "num_minibatches", "hidden_user",
                    "hidden_deployment", "hidden_allocation", "embedding_dim", "checkpoint_every",
                    "allocation_init_concentration", "lambda_max", "allocation_correction_bound",
                    "warm_start_slots", "warm_start_epochs", "warm_start_lr")
        for name in dataclasses.fields(self):
            value = getattr(self, name.name)
            if isinstance(value, float) and not math.isfinite(value):   # also for configs built in code
                raise UserInputError(f"train config: '{name.name}' must be a finite number, got {value!r}")
        for name in positive:
            if getattr(self, name) <= 0:
                raise UserInputError(f"train config: '{name}' must be > 0, got {getattr(self, name)!r}")
        if self.precision not in PRECISIONS:
            raise UserInputError(f"train config: 'precision' must be one of {', '.join(PRECISIONS)}, "
                                 f"got {self.precision!r}")
        for name, allowed in CHOICES.items():
            if getattr(self, name) not in allowed:
                raise UserInputError(f"train config: '{name}' must be one of {', '.join(allowed)}, "
                                     f"got {getattr(self, name)!r}")
        if self.warm_start_deployment and self.deployment_policy != "in-turn":
            raise UserInputError("train config: 'warm_start_deployment' (on in the default preset) clones the "
                                 f"in-turn deployment, not {self.deployment_policy!r}; add --set "
                                 "warm_start_deployment=false")
        for name in ("gamma_user", "gae_lambda_user", "gamma_allocation", "gae_lambda_allocation",
                     "gamma_deployment", "gae_lambda_deployment", "clip"):
            if not 0 <= getattr(self, name) <= 1:
                raise UserInputError(f"train config: '{name}' must be in [0, 1], got {getattr(self, name)!r}")
        for name in ("lambda_init", "lambda_lr", "entropy_user", "entropy_deployment", "rollout_slots",
                     "entropy_allocation", "max_grad_norm", "value_coef", "deployment_migration_weight",
                     "pid_kp", "pid_ki", "pid_kd", "seed"):
            if getattr(self, name) < 0:
                raise UserInputError(f"train config: '{name}' must be >= 0, got {getattr(self, name)!r}")
        check_at_most(self, TRAIN_LIMITS)

    def horizon(self, layer: str) -> tuple[float, float]:
        """(γ, GAE λ) of ``layer`` ∈ {user, allocation, deployment}."""
        return getattr(self, f"gamma_{layer}"), getattr(self, f"gae_lambda_{layer}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


CHOICES = {"deployment_policy": ("in-turn", "gru"), "deployment_reward": ("team", "users", "eq24"),
           "allocation_policy": ("sqrt-correction", "attention")}

# The paper's choices (Sec. V-A, eq. 24, 28-33): one γ = 0.99 and GAE λ = 0.95 for every layer, the GRU
# deployment with per-server eq. 24 reward and a product ratio, the attention allocation, plain dual
# ascent on λ in seconds, hidden sizes 256 / 256 / 128, entropy 0.25 for deployment.
PRESETS: dict[str, dict[str, Any]] = {
    "paper": dict(gamma_user=0.99, gae_lambda_user=0.95, gamma_allocation=0.99, gae_lambda_allocation=0.95,
                  gamma_deployment=0.99, gae_lambda_deployment=0.95, hidden_deployment=256,
                  hidden_allocation=128, entropy_deployment=0.25, deployment_policy="gru",
                  deployment_reward="eq24", allocation_policy="attention", lambda_pid=False,
                  lambda_normalised=False, charge_misses_to_deployment=False, user_server_scoring=False,
                  user_observes_own_device=False, user_observes_split_estimates=False, hidden_user=256,
                  warm_start=False, warm_start_deployment=False),
    # Ours (README, departures): users see each split's price; the in-turn deployment starts as a clone of
    # the popularity heuristic, is paid the users' reward and keeps no entropy bonus (BENCHMARKS, Training).
    # 10 copies × 20-slot rollouts: the same 200 slots per iteration in 20 sequential steps instead of 50
    # (BENCHMARKS, Speed).
    "default": dict(user_observes_split_estimates=True, warm_start_deployment=True, deployment_reward="users",
                    entropy_deployment=0.0, num_envs=10, rollout_slots=20),
}


def preset(name: str) -> dict[str, Any]:
    """TrainConfig overrides of a named preset (UserInputError for an unknown name)."""
    if name not in PRESETS:
        raise UserInputError(f"--preset {name!r}: unknown (allowed: {', '.join(PRESETS)})")
    return dict(PRESETS[name])


def build_configs(overrides: tuple[str, ...], preset_name: str = "default", **flags) -> tuple[TrainConfig, EnvConfig]:
    """The run's (TrainConfig, EnvConfig): the preset, then ``--set env.a.b=v`` (EnvConfig) and ``--set key=v``
    (TrainConfig); ``flags`` (the CLI's own options) win."""
    data = apply_overrides({}, overrides)
    env_cfg = from_dict(EnvConfig, data.pop("env", {}), prefix="env.")
    train = from_dict(TrainConfig, {**preset(preset_name), **data})
    for key, value in flags.items():
        if value is not None:
            setattr(train, key, value)
    train.validate()
    return train, env_cfg
