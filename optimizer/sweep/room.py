"""The room a setting leaves: a hindsight reference that knows what no deployable policy can know.

*Reference, not a competitor.* Two pieces of hindsight on top of the Lagrangian heuristic:

- its λ is tuned on the evaluation episodes themselves, to the smallest whose *mean* delay over them meets τ̄
  (a deployable heuristic tunes on other episodes, to an upper confidence bound, and so pays a margin);
- its deployment knows each ΔT period's requests before they arrive: at every decision it plays the coming
  period ahead on a copy of the environment (requests and channels do not depend on actions) with every
  service on every server and the same users, counts where each request would go, and fills each server's
  storage with the services most requested there (:func:`optimizer.baselines.greedy_fill`, C7 kept).

If a learner lands within a few per cent of this reference, the setting has no room to rank learners by.
"""

from __future__ import annotations

import copy

import torch

from optimizer import baselines
from optimizer.env import EdgeEnv
from optimizer.evaluate import EvalResult, run_episodes

ROOM = "room"


class HindsightDeployment:
    """Deploys for the requests of the coming period, seen ahead on a copy of the environment."""

    def __init__(self, lam: float) -> None:
        self.lam = lam

    def deploy(self, env: EdgeEnv, obs) -> torch.Tensor:
        B, J, K, I, _ = env.dims
        ahead = copy.deepcopy(env)
        ahead.deployment = torch.ones_like(env.deployment)        # where would the requests go if all fit?
        users = baselines.make_baseline("user", "lagrangian", self.lam)
        allocation = baselines.make_baseline("allocation", "best")
        counts = torch.zeros(B, J * I, device=env.device)
        for _ in range(env.cfg.delta_t):
            server, split = users.act(ahead, ahead.user_observation())
            counts.scatter_add_(1, server * I + ahead.request_service, torch.ones_like(server, dtype=counts.dtype))
            compute, bandwidth = allocation.allocate(ahead, ahead.allocation_observation(server, split))
            ahead.step(server, split, compute, bandwidth)
            if ahead.truncated_flag:
                break
        counts = counts.view(B, J, I)
        score = counts + 1e-3 * counts.sum(1, keepdim=True)      # ties: system-wide demand of the period
        return baselines.greedy_fill(score, obs.model_bytes, obs.storage_bytes)


def room_reference(env: EdgeEnv, episodes: int, seed: int, bisection_steps: int = 6) -> EvalResult:
    """The hindsight reference on the evaluation episodes ``seed`` (λ tuned on those very episodes)."""
    allocation = baselines.make_baseline("allocation", "best")

    def play(lam: float) -> EvalResult:
        return run_episodes(env, HindsightDeployment(lam), baselines.make_baseline("user", "lagrangian", lam),
                            allocation, episodes, seed)

    results: dict[float, EvalResult] = {}

    def mean_delay(lam: float) -> float:
        results[lam] = play(lam)
        return float(results[lam].samples["delay_s"].mean())

    cal = baselines.calibrate_lagrangian(mean_delay, env.cfg.cost.delay_limit_s, bisection_steps)
    result = results.get(cal.lam) or play(cal.lam)
    result.extra.update({"policy": ROOM, "lambda": cal.lam, "reference": "hindsight λ and deployment",
                         "calibration": [list(t) for t in cal.tried]})
    return result
