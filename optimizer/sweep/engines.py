"""Where the trials of a sweep run.

- ``local`` (:func:`run_local`): a pool of worker processes on this machine, one torch thread each, at most
  ``workers`` trials at a time. Ctrl-C: the workers finish their iteration (or their evaluation of a seed),
  save and report ``interrupted``; no new trial starts.
- ``ray`` (:func:`run_ray`): Ray Tune, one trial per Tune trial with one CPU (``Tuner`` over the grid of trial
  indices, ``storage_path`` = SWEEP/ray, ``Tuner.restore`` when that experiment exists); ``address`` joins a
  cluster started with ``ray start --head`` (SWEEP must then be on storage every node sees: Ray ≥ 2.7 no
  longer syncs trial folders to the head node).

Both run the same :func:`record_trial` (:func:`~optimizer.sweep.trial.run_trial`, then its outcome file
written where it ran), so the folder is up to date after every trial and a rerun skips what is done.
"""

from __future__ import annotations

import multiprocessing
import signal
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Callable

from optimizer.algos.runner import DeferredInterrupt
from optimizer.sweep.folder import SweepFolder
from optimizer.sweep.spec import SweepSpec
from optimizer.sweep.trial import Trial, TrialOutcome, run_trial


def record_trial(spec: SweepSpec, trial: Trial, sweep_dir: str | Path, profiles: str, commit: str) -> TrialOutcome:
    """Run ``trial`` (skipped when its outcome says ``done``) and write its outcome into the sweep folder."""
    folder = SweepFolder(sweep_dir)
    if folder.finished(trial):
        return folder.outcome(trial)
    outcome = run_trial(spec, trial, sweep_dir, profiles)
    outcome.extra["commit"] = commit
    folder.record(trial, outcome)
    return outcome


def _worker_start() -> None:
    """A worker ignores Ctrl-C between trials; inside one, the trial's own handler takes it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def run_local(spec: SweepSpec, trials: list[Trial], sweep_dir: Path, profiles: str, workers: int, commit: str,
              on_outcome: Callable[[Trial, TrialOutcome], None]) -> bool:
    """Run ``trials`` on ``workers`` processes; returns whether Ctrl-C stopped the sweep."""
    pending = list(trials)
    running: dict[Future, Trial] = {}
    context = multiprocessing.get_context("spawn")      # a fresh interpreter per worker: no forked torch state
    with DeferredInterrupt() as interrupt, \
            ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_worker_start) as pool:
        while pending or running:
            while pending and len(running) < workers and not interrupt.requested:
                trial = pending.pop(0)
                running[pool.submit(record_trial, spec, trial, sweep_dir, profiles, commit)] = trial
            if not running:
                break
            done, _ = wait(list(running), timeout=0.5, return_when=FIRST_COMPLETED)
            for future in done:
                trial = running.pop(future)
                try:
                    outcome = future.result()
                except Exception as exc:      # the worker itself died (killed, out of memory): record it here
                    outcome = TrialOutcome("failed", error=f"worker process ended: {type(exc).__name__}: {exc}",
                                           extra={"commit": commit})
                    SweepFolder(sweep_dir).record(trial, outcome)
                on_outcome(trial, outcome)
            if interrupt.requested:
                pending.clear()
    return interrupt.requested


def _ray_trial(config: dict, spec: SweepSpec, trials: list[Trial], sweep_dir: str, profiles: str, commit: str) -> dict:
    outcome = record_trial(spec, trials[config["index"]], sweep_dir, profiles, commit)
    if outcome.status == "failed":            # errored in Tune's view too, so a restored Tuner retries it
        raise RuntimeError(outcome.error)
    return {"status": outcome.status}


def run_ray(spec: SweepSpec, trials: list[Trial], sweep_dir: Path, profiles: str, workers: int, commit: str,
            on_outcome: Callable[[Trial, TrialOutcome], None], address: str | None = None) -> bool:
    """Run ``trials`` as Ray Tune trials; returns whether some were left unfinished (Ctrl-C)."""
    try:
        import ray
        from ray import tune
    except ImportError:
        from common.errors import UserInputError
        raise UserInputError("--engine ray: Ray is not installed (pip install -e '.[ray]')") from None
    root = Path(sweep_dir).resolve()
    ray.init(address=address, num_cpus=None if address else workers, include_dashboard=False,
             log_to_driver=False, configure_logging=False, ignore_reinit_error=True)
    try:
        trainable = tune.with_resources(tune.with_parameters(_ray_trial, spec=spec, trials=trials, sweep_dir=str(root),
                                                             profiles=profiles, commit=commit), {"cpu": 1})
        experiment = root / "ray" / "tune"
        if tune.Tuner.can_restore(str(experiment)):
            tuner = tune.Tuner.restore(str(experiment), trainable, resume_unfinished=True, resume_errored=True)
        else:
            tuner = tune.Tuner(trainable, param_space={"index": tune.grid_search(list(range(len(trials))))},
                               tune_config=tune.TuneConfig(max_concurrent_trials=workers),
                               run_config=tune.RunConfig(storage_path=str(root / "ray"), name="tune", verbose=0))
        tuner.fit()
    finally:
        ray.shutdown()
    folder = SweepFolder(root)
    unfinished = False
    for trial in trials:
        outcome = folder.outcome(trial)
        if outcome is None or outcome.status == "interrupted":
            unfinished = True
            continue
        on_outcome(trial, outcome)
    return unfinished
