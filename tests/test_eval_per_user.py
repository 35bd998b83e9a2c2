"""The per-user distribution of the evaluation (the paper's Fig. 6): its mean is the episode's charged cost,
its quantiles are torch's on a case worked by hand, and a sweep records and reports them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from optimizer.algos.runner import load_catalog
from optimizer.config import EnvConfig
from optimizer.env import EdgeEnv
from optimizer.env.metrics import USER_QUANTILE_NAMES, user_quantiles
from optimizer.evaluate import evaluate_baseline

FIXTURES = str(Path(__file__).parent / "fixtures" / "profiles")


@pytest.mark.parametrize("policy", ["greedy", "random", "edge-only"])
def test_the_mean_over_users_is_the_episode_charged_cost(policy):
    cfg = EnvConfig(num_servers=2, num_users=6, services_per_model=2, slots_per_episode=8, delta_t=2)
    env = EdgeEnv(cfg, load_catalog(FIXTURES, cfg), num_envs=3, seed=0)
    result = evaluate_baseline(policy, env, episodes=5, seed=11)
    assert result.per_user.shape == (5, 6)
    # every slot has K requests, so the mean over users of each user's slot mean is the mean over slots of
    # the slot means over users
    np.testing.assert_allclose(result.per_user.mean(axis=1), result.samples["charged_cost"], rtol=1e-5)
    q = result.user_quantiles()
    assert list(q) == list(USER_QUANTILE_NAMES)
    assert q["user_charged_cost_p05"] <= q["user_charged_cost_p50"] <= q["user_charged_cost_p95"]
    assert result.per_user.min() <= q["user_charged_cost_p05"] and q["user_charged_cost_p95"] <= result.per_user.max()


def test_quantiles_by_hand():
    # 0, 1, …, 100: the q-quantile with linear interpolation is 100 q
    q = user_quantiles(torch.arange(101, dtype=torch.float64).reshape(1, 101))
    assert q == {"user_charged_cost_p05": 5.0, "user_charged_cost_p25": 25.0, "user_charged_cost_p50": 50.0,
                 "user_charged_cost_p75": 75.0, "user_charged_cost_p95": 95.0}
    # 1, 2, 3, 4 (two episodes × two users): p25 = 1.75, median 2.5, p95 = 3.85
    q = user_quantiles(torch.tensor([[1.0, 2.0], [3.0, 4.0]]))
    assert q["user_charged_cost_p25"] == pytest.approx(1.75) and q["user_charged_cost_p50"] == pytest.approx(2.5)
    assert q["user_charged_cost_p95"] == pytest.approx(3.85)


def test_a_setting_shows_its_distribution_whole_or_not_at_all():
    from optimizer.sweep.report import Cell, _with_users

    def cell(cost, quantiles):
        values = {"charged_cost": np.array([cost])}
        values.update({n: np.array([cost]) for n in USER_QUANTILE_NAMES} if quantiles else {})
        return Cell("heuristic", values)

    assert _with_users({"greedy": cell(2.0, True), "random": cell(1.0, True)}) == ["random", "greedy"]
    assert _with_users({"greedy": cell(2.0, True), "random": cell(1.0, False)}) == []   # an older trial
