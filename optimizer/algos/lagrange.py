"""The Lagrange multiplier λ of the delay constraint (eq. 32–33), and a PID variant.

Plain projected dual ascent (eq. 33, Algorithm 1 lines 17–18):
    λ ← clip(λ + α_λ (Ĵ_C − τ̄), 0, λ_max),   λ0 = 0.01, α_λ = 0.01, λ_max = 100
where Ĵ_C is the measured mean per-user delay cost c_k = τ_k of the iteration (eq. 27).

PID variant (Stooke, Achiam & Abbeel, "Responsive Safety in RL by PID Lagrangian Methods", 2020):
    e = Ĵ_C − τ̄;  I ← clip(I + k_i e, 0, λ_max)  (anti-windup);
    λ = clip(k_p e + I + k_d max(0, Ĵ_C − Ĵ_C^prev), 0, λ_max)
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class LagrangeMultiplier:
    """λ ≥ 0 for one long-term average constraint J_C ≤ limit, updated once per iteration."""

    value: float = 0.01
    lr: float = 0.01
    upper: float = 100.0

    def update(self, measured_cost: float, limit: float) -> float:
        """Projected dual ascent step (eq. 33); returns the new λ."""
        self.value = min(max(self.value + self.lr * (measured_cost - limit), 0.0), self.upper)
        return self.value

    def state_dict(self) -> dict:
        return {"value": self.value}

    def load_state_dict(self, state: dict) -> None:
        self.value = float(state["value"])


@dataclass
class PIDLagrangeMultiplier:
    """λ from a PID controller on the constraint violation (Stooke et al. 2020), kept in [0, upper]."""

    value: float = 0.01
    kp: float = 0.05
    ki: float = 0.01
    kd: float = 0.0
    upper: float = 100.0
    integral: float | None = None
    previous_cost: float | None = None

    def update(self, measured_cost: float, limit: float) -> float:
        error = measured_cost - limit
        if self.integral is None:
            self.integral = self.value          # start from λ0
        self.integral = min(max(0.0, self.integral + self.ki * error), self.upper)   # anti-windup
        rise = 0.0 if self.previous_cost is None else max(0.0, measured_cost - self.previous_cost)
        self.previous_cost = measured_cost
        self.value = min(max(self.kp * error + self.integral + self.kd * rise, 0.0), self.upper)
        return self.value

    def state_dict(self) -> dict:
        return {"value": self.value, "integral": self.integral, "previous_cost": self.previous_cost}

    def load_state_dict(self, state: dict) -> None:
        self.value = float(state["value"])
        self.integral = state["integral"]
        self.previous_cost = state["previous_cost"]
