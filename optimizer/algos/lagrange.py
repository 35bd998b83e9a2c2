"""The Lagrange multiplier λ of the delay constraint (eq. 32–33), and a PID variant.

The constraint error of an iteration is e = Ĵ_C − τ̄ (seconds, the paper) or, normalised, e = Ĵ_C / τ̄ − 1
(dimensionless: a 10 % violation reads 0.1 whatever τ̄ is), Ĵ_C the measured mean per-user delay
τ_k (eq. 27) of the iteration.

Plain projected dual ascent (eq. 33, Algorithm 1 lines 17–18):
    λ ← clip(λ + α_λ e, 0, λ_max),   λ0 = 0.01, α_λ = 0.01, λ_max = 100

PID variant (Stooke, Achiam & Abbeel, "Responsive Safety in RL by PID Lagrangian Methods", 2020):
    I ← clip(I + k_i e, 0, λ_max)               (integral with anti-windup: never below 0 or above λ_max)
    λ = clip(k_p e + I + k_d max(0, Ĵ_C − Ĵ_C^prev), 0, λ_max)
The proportional term reacts at once and vanishes when the constraint is met, so λ falls back as soon
as the policy is feasible instead of winding down slowly from wherever the integral drove it.
"""

from __future__ import annotations

from dataclasses import dataclass


def constraint_error(measured_cost: float, limit: float, normalised: bool) -> float:
    return measured_cost / limit - 1.0 if normalised else measured_cost - limit


@dataclass
class LagrangeMultiplier:
    """λ ≥ 0 for one long-term average constraint J_C ≤ limit, updated once per iteration."""

    value: float = 0.01
    lr: float = 0.01
    upper: float = 100.0
    normalised: bool = False

    def update(self, measured_cost: float, limit: float) -> float:
        """Projected dual ascent step (eq. 33); returns the new λ."""
        error = constraint_error(measured_cost, limit, self.normalised)
        self.value = min(max(self.value + self.lr * error, 0.0), self.upper)
        return self.value

    def state_dict(self) -> dict:
        return {"value": self.value}

    def load_state_dict(self, state: dict) -> None:
        self.value = float(state["value"])


@dataclass
class PIDLagrangeMultiplier:
    """λ from a PID controller on the constraint error (Stooke et al. 2020), kept in [0, upper]."""

    value: float = 0.01
    kp: float = 1.0
    ki: float = 0.05
    kd: float = 0.0
    upper: float = 100.0
    normalised: bool = True
    integral: float | None = None
    previous_cost: float | None = None

    def update(self, measured_cost: float, limit: float) -> float:
        error = constraint_error(measured_cost, limit, self.normalised)
        if self.integral is None:
            self.integral = self.value          # start from λ0
        self.integral = min(max(0.0, self.integral + self.ki * error), self.upper)   # anti-windup
        rise = 0.0 if self.previous_cost is None else max(0.0, measured_cost - self.previous_cost)
        if self.normalised:
            rise /= limit
        self.previous_cost = measured_cost
        self.value = min(max(self.kp * error + self.integral + self.kd * rise, 0.0), self.upper)
        return self.value

    def state_dict(self) -> dict:
        return {"value": self.value, "integral": self.integral, "previous_cost": self.previous_cost}

    def load_state_dict(self, state: dict) -> None:
        self.value = float(state["value"])
        self.integral = state["integral"]
        self.previous_cost = state["previous_cost"]


def make_multiplier(cfg) -> LagrangeMultiplier | PIDLagrangeMultiplier:
    """The multiplier a :class:`TrainConfig` asks for."""
    if cfg.lambda_pid:
        return PIDLagrangeMultiplier(cfg.lambda_init, cfg.pid_kp, cfg.pid_ki, cfg.pid_kd, cfg.lambda_max,
                                     cfg.lambda_normalised)
    return LagrangeMultiplier(cfg.lambda_init, cfg.lambda_lr, cfg.lambda_max, cfg.lambda_normalised)
