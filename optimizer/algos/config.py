"""TrainConfig: every hyper-parameter of the trainer in one dataclass (Sec. V-A, Algorithm 1).

Defaults are the paper's where it gives them (lr 3e-4, γ 0.99, GAE λ 0.95, clip 0.2, entropy 0.05 for
users and 0.25 for deployment, λ0 = 0.01, α_λ = 0.01, λ ∈ [0, 100], hidden sizes 256 / 256 / 128,
1000 iterations of 200 slots); the rest (epochs, minibatches, gradient clipping, embedding sizes)
are the usual MAPPO choices and are the same for every algorithm.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from common.errors import UserInputError
from common.precision import PRECISIONS


@dataclass
class TrainConfig:
    """Hyper-parameters of HC-MAPPO-L and of every ablation (one tuning budget for all)."""

    algo: str = "hc-mappo-l"
    iterations: int = 1000              # Algorithm 1 outer loop; each collects one episode per env copy
    num_envs: int = 1                   # N episodes per iteration, simulated as batched env copies
    seed: int = 0
    device: str = "cpu"
    precision: str = "auto"             # matmuls in rollouts and updates: auto | bf16 (autocast) | fp32
    # PPO (shared by all layers)
    lr: float = 3e-4
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip: float = 0.2
    ppo_epochs: int = 5
    num_minibatches: int = 4
    max_grad_norm: float = 0.5
    value_coef: float = 0.5             # deployment: actor and critic share the GRU, one loss
    entropy_user: float = 0.05
    entropy_deployment: float = 0.25
    entropy_allocation: float = 0.0     # not given by the paper; Dirichlet sampling explores by itself
    # Networks
    hidden_user: int = 256
    hidden_deployment: int = 256
    hidden_allocation: int = 128
    embedding_dim: int = 16             # d_m, d_s (eq. 16) and split embedding (eq. 18 keys)
    deployment_stop_action: bool = False  # paper: decode until no service fits; True adds a learned stop
    deployment_observes_previous: bool = False  # extension of eq. 14: own x_j(t−ΔT) and coverage
    allocation_init_concentration: float = 5.0   # Dirichlet concentration per user at init
    # Lagrangian (eq. 33)
    lambda_init: float = 0.01
    lambda_lr: float = 0.01
    lambda_max: float = 100.0
    lambda_pid: bool = False            # PID Lagrangian (Stooke et al. 2020) instead of plain dual ascent
    pid_kp: float = 0.05
    pid_ki: float = 0.01
    pid_kd: float = 0.0
    # Run directory
    checkpoint_every: int = 1
    tensorboard: bool = True

    def validate(self) -> None:
        """Raise UserInputError naming the field if a value is out of range."""
        positive = ("iterations", "num_envs", "lr", "ppo_epochs", "num_minibatches", "hidden_user",
                    "hidden_deployment", "hidden_allocation", "embedding_dim", "checkpoint_every",
                    "allocation_init_concentration", "lambda_max")
        for name in positive:
            if getattr(self, name) <= 0:
                raise UserInputError(f"train config: '{name}' must be > 0, got {getattr(self, name)!r}")
        if self.precision not in PRECISIONS:
            raise UserInputError(f"train config: 'precision' must be one of {', '.join(PRECISIONS)}, "
                                 f"got {self.precision!r}")
        for name in ("gamma", "gae_lambda", "clip"):
            if not 0 <= getattr(self, name) <= 1:
                raise UserInputError(f"train config: '{name}' must be in [0, 1], got {getattr(self, name)!r}")
        for name in ("lambda_init", "lambda_lr", "entropy_user", "entropy_deployment",
                     "entropy_allocation", "max_grad_norm", "value_coef"):
            if getattr(self, name) < 0:
                raise UserInputError(f"train config: '{name}' must be >= 0, got {getattr(self, name)!r}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
