"""What a sweep will cost before it runs: core-seconds of the trials still to do, at a pace measured on
this folder's finished trials when it has some, else at the stated default pace.

A learner trial trains each seed (warm start + iterations) and evaluates it; a heuristic trial plays its
evaluation episodes (a calibrated one ≈ 7× as many while it tunes λ). The constants are the default
setting's pace on one core of a quiet Intel project machine (BENCHMARKS "Speed"); the AMD machines run an
iteration ≈ 1.7× slower (0.86 s), which is why a resumed sweep rescales by what its own trials took.
"""

from __future__ import annotations

from dataclasses import dataclass

from optimizer.sweep.spec import SweepSpec
from optimizer.sweep.trial import Trial, TrialOutcome

#: Seconds per training iteration of one run at the default setting on one core (BENCHMARKS "Speed",
#: 0.45–0.59 s on the Intel machines, 0.86 s on the AMD ones).
ITERATION_S = 0.5
#: Seconds of a run's first iteration beyond the others: the deployment's clone of the popularity heuristic
#: (13–28 s measured, BENCHMARKS "Speed").
WARM_START_S = 30.0
#: Seconds per evaluation episode of one policy (200 slots, 5 copies side by side).
EPISODE_S = 2.0
#: Episodes a heuristic trial plays per evaluation episode (the calibrated one tunes λ on its own episodes).
HEURISTIC_EPISODES = 7


@dataclass(frozen=True)
class Estimate:
    core_s: float          # the trials still to do, in core-seconds
    scale: float           # measured / default pace (1.0 when nothing is measured yet)
    measured_on: int       # finished trials the scale comes from

    def hours_on(self, workers: int, trials_left: int) -> float:
        return self.core_s / 3600 / max(1, min(workers, trials_left))

    def pace_words(self) -> str:
        if self.measured_on:
            return (f"at the pace of the {self.measured_on} trial{'s' if self.measured_on > 1 else ''} done here "
                    f"({self.scale:.2f}× the default {ITERATION_S} s per iteration)")
        return (f"at {ITERATION_S} s per iteration (the default setting on a quiet Intel core; AMD cores and "
                "larger settings take longer, and a rerun rescales by the trials done)")


def default_seconds(spec: SweepSpec, trial: Trial) -> float:
    """A trial's core-seconds at the default pace."""
    if trial.learns:
        return len(spec.seeds) * (spec.iterations * ITERATION_S + WARM_START_S + spec.eval_episodes * EPISODE_S)
    return HEURISTIC_EPISODES * spec.eval_episodes * EPISODE_S


def estimate(spec: SweepSpec, todo: list[Trial], done: list[tuple[Trial, TrialOutcome]]) -> Estimate:
    """Core-seconds of ``todo``, rescaled by what the finished learner trials of ``done`` took against their
    default estimate (learners dominate a sweep's cost; heuristic trials are too short to time the machine)."""
    timed = [(t, o) for t, o in done if t.learns and o.status == "done" and o.elapsed_s > 0]
    scale = 1.0
    if timed:
        scale = sum(o.elapsed_s for _, o in timed) / sum(default_seconds(spec, t) for t, _ in timed)
    return Estimate(scale * sum(default_seconds(spec, t) for t in todo), scale, len(timed))
