"""One trial of a sweep: a policy in a setting, all its seeds, trained (if it learns) and then evaluated.

The same function runs under every engine. A learner trains its seeds side by side in one process
(:func:`optimizer.algos.runner.train_group`, resumed from the checkpoints a previous attempt left) in
``SWEEP/runs/SETTING/ALGO/seed-S``, then each seed's greedy policy is evaluated on the setting's evaluation
episodes; a heuristic is evaluated on the same episodes (the Lagrangian one after tuning its λ on the
setting's own calibration episodes). The outcome is what the sweep records: one value per (seed, metric),
the mean over the evaluation episodes, with the 95 % CI over episodes beside it.
"""

from __future__ import annotations

import math
import time
import traceback
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from optimizer.algos.group import seed_dir
from optimizer.algos.runner import DeferredInterrupt, load_catalog, train_group
from optimizer.algos.trained import load_policies
from optimizer.env import EdgeEnv
from optimizer.env.metrics import METRIC_NAMES
from optimizer.evaluate import EvalResult, evaluate_baseline, run_episodes
from optimizer.sweep.room import ROOM, room_reference
from optimizer.sweep.spec import Setting, SweepSpec
from optimizer.algos.config import build_configs

EVAL_COPIES = 5       # env copies evaluated side by side


@dataclass
class Trial:
    setting: Setting
    policy: str
    learns: bool

    @property
    def key(self) -> str:
        return f"{self.setting.slug}/{self.policy}"


@dataclass
class TrialOutcome:
    status: str                                   # done | failed | interrupted
    rows: list[dict[str, Any]] = field(default_factory=list)    # seed, metric, value, ci95
    error: str = ""
    elapsed_s: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


def trials_of(spec: SweepSpec) -> list[Trial]:
    policies = [(a, True) for a in spec.algorithms] + [(h, False) for h in spec.heuristics]
    policies += [(ROOM, False)] if spec.room else []
    return [Trial(s, p, learns) for s in spec.settings() for p, learns in policies]


def kind_of(trial: Trial) -> str:
    return "learner" if trial.learns else "reference" if trial.policy == ROOM else "heuristic"


def run_trial(spec: SweepSpec, trial: Trial, sweep_dir: str | Path, profiles: str) -> TrialOutcome:
    """Train and evaluate ``trial``; never raises: a failure is an outcome with its one-line error."""
    torch.set_num_threads(1)            # one thread per trial (Ray sets OMP_NUM_THREADS to the trial's CPUs)
    began = time.perf_counter()
    try:
        with DeferredInterrupt() as stop:
            outcome = _run(spec, trial, Path(sweep_dir), profiles, stop)
    except Exception as exc:            # recorded, and the sweep goes on
        last = traceback.extract_tb(exc.__traceback__)[-1]
        where = f" ({Path(last.filename).name}:{last.lineno})" if last else ""
        outcome = TrialOutcome("failed", error=f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
                                                f"{where}")
    outcome.elapsed_s = time.perf_counter() - began
    return outcome


def _run(spec: SweepSpec, trial: Trial, sweep_dir: Path, profiles: str, stop: DeferredInterrupt) -> TrialOutcome:
    cfg, env_cfg = build_configs(trial.setting.overrides, spec.preset, iterations=spec.iterations,
                                 tensorboard=False)
    catalog = load_catalog(profiles, env_cfg)
    env = EdgeEnv(env_cfg, catalog, num_envs=min(spec.eval_episodes, EVAL_COPIES), seed=0)
    outcome = TrialOutcome("done")
    if trial.policy == ROOM:
        result = room_reference(env, spec.eval_episodes, spec.eval_seed)
        outcome.rows = _rows(result, seed=None)
        outcome.extra = {"lambda": result.extra["lambda"], "reference": result.extra["reference"]}
        return outcome
    if not trial.learns:
        result = evaluate_baseline(trial.policy, env, spec.eval_episodes, spec.eval_seed)
        outcome.rows = _rows(result, seed=None)
        outcome.extra = {k: v for k, v in result.extra.items() if k in ("lambda", "deployment", "allocation")}
        return outcome
    folder = sweep_dir / "runs" / trial.setting.slug / trial.policy
    dirs = [seed_dir(folder, s) for s in spec.seeds]
    cfgs = [replace(cfg, algo=trial.policy, seed=s) for s in spec.seeds]
    resume = any((d / "checkpoint.pt").exists() for d in dirs)
    results = train_group(cfgs, env_cfg, profiles, dirs, resume=resume, progress=False)
    if any(r.interrupted for r in results):
        return TrialOutcome("interrupted")
    diverged = [r for r in results if r.diverged]
    outcome.extra = {"diverged": {r.seed: r.diverged for r in diverged}} if diverged else {}
    for result in results:
        if stop.requested:
            return TrialOutcome("interrupted")
        if result.diverged:
            continue                     # no policy to evaluate; the trial records which seed broke
        dep, usr, alloc, _ = load_policies(result.run_dir)
        outcome.rows += _rows(run_episodes(env, dep, usr, alloc, spec.eval_episodes, spec.eval_seed), result.seed)
        outcome.extra.setdefault("final_lambda", {})[result.seed] = result.history[-1]["lambda"]
    return outcome


def _rows(result: EvalResult, seed: int | None) -> list[dict[str, Any]]:
    """One row per metric (mean over episodes with its 95 % CI), then the per-user quantiles (Fig. 6; no CI:
    a quantile of users × episodes)."""
    summary = result.summary()
    episodes = summary["delay_s"].n
    return [{"seed": seed, "metric": name, "value": summary[name].mean,
             "ci95": summary[name].ci95 if math.isfinite(summary[name].ci95) else None,
             "episodes": summary[name].n} for name in METRIC_NAMES] + \
        [{"seed": seed, "metric": name, "value": value, "ci95": None, "episodes": episodes}
         for name, value in result.user_quantiles().items()]
