"""Where the trials of a sweep run. ``local``: a pool of worker processes on this machine, one torch thread
each, at most ``workers`` trials at a time.

Every engine calls the same :func:`~optimizer.sweep.trial.run_trial` and hands each outcome back to the
caller as soon as it is known (``on_outcome``), so the folder is up to date after every trial. Ctrl-C: the
workers finish their iteration (or their evaluation of a seed), save and report ``interrupted``; no new trial
starts; :func:`run_local` returns with ``interrupted`` set once the running ones have stopped.
"""

from __future__ import annotations

import multiprocessing
import signal
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Callable

from optimizer.algos.runner import DeferredInterrupt
from optimizer.sweep.spec import SweepSpec
from optimizer.sweep.trial import Trial, TrialOutcome, run_trial


def _worker_start() -> None:
    """A worker ignores Ctrl-C between trials; inside one, the trial's own handler takes it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def run_local(spec: SweepSpec, trials: list[Trial], sweep_dir: Path, profiles: str, workers: int,
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
                running[pool.submit(run_trial, spec, trial, sweep_dir, profiles)] = trial
            if not running:
                break
            done, _ = wait(list(running), timeout=0.5, return_when=FIRST_COMPLETED)
            for future in done:
                trial = running.pop(future)
                try:
                    outcome = future.result()
                except Exception as exc:      # the worker itself died (killed, out of memory)
                    outcome = TrialOutcome("failed", error=f"worker process ended: {type(exc).__name__}: {exc}")
                on_outcome(trial, outcome)
            if interrupt.requested:
                pending.clear()
    return interrupt.requested
