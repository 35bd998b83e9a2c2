"""The plan line's cost estimate: the default pace by hand, and a resumed sweep rescaled by what its own
finished learner trials took."""

from __future__ import annotations

import pytest

from optimizer.sweep.plan import estimate
from optimizer.sweep.spec import SweepSpec
from optimizer.sweep.trial import TrialOutcome, trials_of

SPEC = SweepSpec(name="t", algorithms=["hc-mappo-l", "h-mappo"], heuristics=["greedy"], room=False, seeds=[0, 1],
                 iterations=10, eval_episodes=1)
# by hand at the default pace: a learner 2 seeds × (10 × 0.5 + 30 + 1 × 2) = 74 s; a heuristic 7 × 1 × 2 = 14 s


def test_default_pace_by_hand():
    trials = trials_of(SPEC)
    cost = estimate(SPEC, trials, [])
    assert cost.core_s == pytest.approx(74 + 74 + 14) and cost.scale == 1.0 and cost.measured_on == 0
    assert cost.hours_on(workers=2, trials_left=3) == pytest.approx(162 / 3600 / 2)
    assert cost.hours_on(workers=8, trials_left=1) == pytest.approx(162 / 3600)   # one trial: one worker


def test_a_resumed_sweep_takes_the_pace_of_its_finished_learners():
    learner, other, heuristic = trials_of(SPEC)
    done = [(learner, TrialOutcome("done", elapsed_s=148.0)),            # twice the default
            (heuristic, TrialOutcome("done", elapsed_s=500.0)),          # heuristics do not time the machine
            (other, TrialOutcome("failed", elapsed_s=1.0))]              # nor does a failure
    cost = estimate(SPEC, [other], done)
    assert cost.scale == pytest.approx(2.0) and cost.measured_on == 1
    assert cost.core_s == pytest.approx(148.0)
    assert "1 trial done here (2.00×" in cost.pace_words()
