"""Training runs with their run directories: resolved config, metrics CSV, TensorBoard, checkpoints, PNGs.

``runs/NAME/``: ``config.json`` (resolved TrainConfig + EnvConfig + profile source), ``metrics.csv``
(one row per iteration), ``tb/`` (TensorBoard), ``checkpoint.pt`` (see :mod:`.checkpoint`), ``curves.png``
(training curves), and once the run is finished ``actors.pt`` (its acting networks alone). Ctrl-C finishes
the current iteration, writes the checkpoint and stops (a second Ctrl-C aborts at once; the checkpoint of
the previous iteration stays valid). ``resume=True`` continues from the checkpoint and reproduces, on CPU,
the numbers of an uninterrupted run.

:func:`train_group` trains several runs (seeds) in one process, iteration by iteration in turn, each in its
own directory and with its own RNG stream (:mod:`.group`); :func:`train_run` is the group of one.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from tqdm import tqdm

from common.errors import UserInputError
from common.files import atomic_open
from optimizer.algos import checkpoint
from optimizer.algos.config import TrainConfig
from optimizer.algos.group import RunRNG
from optimizer.algos.hc_mappo_l import Trainer, TrainingDiverged
from optimizer.algos.logging import MetricsCSV, TensorBoardLog, plot_curves
from optimizer.config import EnvConfig, from_dict, to_dict
from optimizer.env import ServiceCatalog

SYNTHETIC = "synthetic"


def load_catalog(profiles: str, env_cfg: EnvConfig) -> ServiceCatalog:
    """Profile folder → catalog; ``"synthetic"`` uses the env's SYNTHETIC tables (labelled as such)."""
    if profiles == SYNTHETIC:
        from optimizer.env.synthetic import synthetic_zoo
        return ServiceCatalog.from_profiles(synthetic_zoo(), env_cfg.services_per_model, env_cfg.compute_unit,
                                            env_cfg.defenses)
    if not Path(profiles).is_dir():
        raise UserInputError(f"--profiles {profiles}: not a folder of profile tables (or 'synthetic')")
    return ServiceCatalog.from_profiles(profiles, env_cfg.services_per_model, env_cfg.compute_unit, env_cfg.defenses)


@dataclass
class RunResult:
    run_dir: Path
    algo: str
    delay_limit_s: float       # τ̄ of the run's env config
    iterations: int            # iterations completed in total
    interrupted: bool
    history: list[dict[str, Any]]
    seed: int = 0
    diverged: str | None = None     # the one-line reason this run stopped early, if it did
    saved_iteration: int = 0        # the iteration its checkpoint holds


class DeferredInterrupt:
    """First SIGINT sets a flag (the loop stops at the next iteration boundary); the second aborts."""

    def __init__(self) -> None:
        self.requested = False
        self._previous = None

    def __enter__(self) -> "DeferredInterrupt":
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        self.requested = True
        signal.signal(signal.SIGINT, self._previous or signal.default_int_handler)

    def __exit__(self, *exc) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


@dataclass
class _Opened:
    """A run directory read before training: its config, profile record and saved state (``None``: fresh)."""

    cfg: TrainConfig
    env_cfg: EnvConfig
    profiles: str
    record: dict[str, Any]
    state: dict | None = None
    history: list[dict[str, Any]] = field(default_factory=list)


def _open(cfg: TrainConfig, env_cfg: EnvConfig, profiles: str, run_dir: Path, resume: bool) -> _Opened:
    if not resume:
        if any((run_dir / name).exists() for name in (checkpoint.CHECKPOINT_NAME, checkpoint.ACTORS_NAME)):
            raise UserInputError(f"--out {run_dir}: holds a run already; add --resume or pick another --out")
        return _Opened(cfg, env_cfg, profiles,
                       {"profiles": profiles, "profiles_from_run": checkpoint.profiles_from_run(profiles, run_dir)})
    saved = checkpoint.load(run_dir)
    cfg = TrainConfig(**{**saved["train_config"], "iterations": cfg.iterations})
    env_cfg, profiles = from_dict(EnvConfig, saved["env_config"]), checkpoint.profiles_of(saved, run_dir)
    if profiles != SYNTHETIC and not Path(profiles).is_dir():
        where = ("recorded relative to the folder it was trained in: resume from there once, then from anywhere"
                 if "profiles_from_run" not in saved else f"nor {saved['profiles_from_run']} from {run_dir}")
        raise UserInputError(f"--resume --out {run_dir}: its profile tables {profiles} are not found ({where})")
    # an old run (saved with ``profiles`` alone) gains ``profiles_from_run`` here
    from_run = saved.get("profiles_from_run") or checkpoint.profiles_from_run(profiles, run_dir)
    record = {"profiles": saved["profiles"], "profiles_from_run": from_run}
    return _Opened(cfg, env_cfg, profiles, record, saved["trainer"], list(saved["history"]))


class _Run:
    """One run of a group: its trainer and RNG stream, and the files of its directory."""

    def __init__(self, opened: _Opened, run_dir: Path, catalog: ServiceCatalog) -> None:
        self.cfg, self.env_cfg, self.record, self.run_dir = opened.cfg, opened.env_cfg, opened.record, run_dir
        self.trainer = Trainer(opened.cfg, opened.env_cfg, catalog)   # seeds the global RNG, initialises
        if opened.state is not None:
            self.trainer.load_state_dict(opened.state)                 # restores the run's RNG states
        self.rng = RunRNG(self.trainer.device)                         # what the run has drawn so far
        self.history = opened.history
        self.saved_iteration = self.trainer.iteration
        self.diverged: str | None = None
        run_dir.mkdir(parents=True, exist_ok=True)
        resolved = {"train": self.cfg.to_dict(), "env": to_dict(self.env_cfg), **self.record,
                    "synthetic_profiles": opened.profiles == SYNTHETIC, "services": list(catalog.service_names),
                    "device": str(self.trainer.device), "precision": "bf16" if self.trainer.bf16 else "fp32"}
        with atomic_open(run_dir / "config.json") as fh:
            json.dump(resolved, fh, indent=2)
        self.csv = MetricsCSV(run_dir / "metrics.csv")
        self.csv.rewrite(self.history)
        self.tb = TensorBoardLog(run_dir, self.cfg.tensorboard)
        self.slots = self.history[-1]["env_slots"] if self.history else 0
        self.wall = self.history[-1]["wall_s"] if self.history else 0.0

    @property
    def running(self) -> bool:
        return self.diverged is None and self.trainer.iteration < self.cfg.iterations

    def iterate(self) -> dict[str, Any] | None:
        """One iteration with the run's own RNG; its row, or ``None`` (and :attr:`diverged` set) if it broke."""
        start = time.perf_counter()
        try:
            with self.rng.active():
                row = self.trainer.train_iteration()
        except TrainingDiverged as exc:
            self.diverged = str(exc)
            return None
        self.slots += self.env_cfg.slots_per_episode * self.cfg.num_envs
        self.wall += time.perf_counter() - start
        row.update(env_slots=self.slots, wall_s=self.wall)
        self.history.append(row)
        self.csv.append(row)
        self.tb.log(row)
        if self.trainer.iteration == self.cfg.iterations or self.trainer.iteration % self.cfg.checkpoint_every == 0:
            self.save()
        if self.trainer.iteration == self.cfg.iterations:
            checkpoint.save_actors(self.run_dir, self._configs(),
                                   {name: m.state_dict() for name, m in self.trainer.agents.modules().items()})
        return row

    def _configs(self) -> dict[str, Any]:
        return {"train_config": self.cfg.to_dict(), "env_config": to_dict(self.env_cfg), **self.record,
                "dims": self.trainer.dims.__dict__}

    def save(self) -> None:
        if not self.history or self.saved_iteration == self.trainer.iteration:
            return
        with self.rng.active():           # the trainer's state holds the run's RNG, not the caller's
            payload = {**self._configs(), "trainer": self.trainer.state_dict(), "history": self.history}
        checkpoint.save(self.run_dir, payload)
        self.saved_iteration = self.trainer.iteration

    def close(self, profiles: str) -> None:
        self.tb.close()
        plot_curves(self.history, self.run_dir, self.env_cfg.cost.delay_limit_s,
                    title=f"{self.cfg.algo} (seed {self.cfg.seed}, profiles: {profiles})")

    def result(self, interrupted: bool) -> RunResult:
        return RunResult(self.run_dir, self.cfg.algo, self.env_cfg.cost.delay_limit_s, self.trainer.iteration,
                         interrupted, self.history, self.cfg.seed, self.diverged, self.saved_iteration)


def train_group(cfgs: list[TrainConfig], env_cfg: EnvConfig, profiles: str, run_dirs: list[str | Path],
                resume: bool = False, progress: bool = True,
                on_iteration: Callable[[int, dict], None] | None = None,
                warn: Callable[[str], None] = lambda message: None,
                on_start: Callable[[], None] | None = None) -> list[RunResult]:
    """Train the runs ``cfgs`` (one per directory of ``run_dirs``) for ``cfg.iterations`` iterations each.

    The runs take turns, one iteration each; each is exactly the run it would be alone. A run whose update
    goes non-finite stops there (its :attr:`RunResult.diverged` says why; its directory keeps its last
    checkpoint) and the others go on. With ``resume`` a directory without a checkpoint starts afresh (a run
    interrupted before its first iteration finished), and a group needs at least one checkpoint.
    ``warn`` receives one line when the profile tables' leakage settings differ (see the catalog);
    ``on_iteration(seed, row)`` follows every finished iteration; ``on_start()`` runs once every directory has
    been checked and the tables read, before the first directory is written.
    """
    dirs = [Path(d) for d in run_dirs]
    if resume and len(dirs) > 1 and not any((d / checkpoint.CHECKPOINT_NAME).exists() for d in dirs):
        raise UserInputError(f"--resume: no run of the group in {dirs[0].parent} has a checkpoint yet")
    opened = [_open(cfg, env_cfg, profiles, d,
                    resume and (len(dirs) == 1 or (d / checkpoint.CHECKPOINT_NAME).exists()))
              for cfg, d in zip(cfgs, dirs)]
    first = next((o for o in opened if o.state is not None), opened[0])    # resumed runs carry their config
    for o in opened:
        if o.state is None and resume:
            o.env_cfg, o.profiles, o.record = first.env_cfg, first.profiles, dict(first.record)
            o.cfg = TrainConfig(**{**first.cfg.to_dict(), "seed": o.cfg.seed, "iterations": o.cfg.iterations})
        if (o.env_cfg, o.profiles) != (first.env_cfg, first.profiles):
            raise UserInputError(f"--resume: the runs of the group were trained on different environments or "
                                 f"tables ({first.profiles} and {o.profiles})")
    catalog = load_catalog(first.profiles, first.env_cfg)
    if catalog.leakage_warning:
        warn(catalog.leakage_warning)
    if on_start is not None:
        on_start()
    runs = [_Run(o, d, catalog) for o, d in zip(opened, dirs)]
    interrupted = False
    tau_bar = first.env_cfg.cost.delay_limit_s
    total = sum(max(r.cfg.iterations, r.trainer.iteration) for r in runs)
    bar = tqdm(total=total, initial=sum(r.trainer.iteration for r in runs), desc=first.cfg.algo, file=sys.stderr,
               disable=not progress, dynamic_ncols=True, unit="it")
    try:
        with DeferredInterrupt() as interrupt:
            while not interrupted and any(r.running for r in runs):
                for run in [r for r in runs if r.running]:
                    if interrupt.requested:
                        interrupted = True
                        break
                    row = run.iterate()
                    bar.update(1)
                    if row is None:
                        continue
                    seed = f"s{run.cfg.seed} " if len(runs) > 1 else ""
                    bar.set_postfix_str(f"{seed}cost {row['user_cost']:.1f} delay {row['delay_s']:.2f}/{tau_bar:g}s "
                                        f"λ {row['lambda']:.3f}")
                    if on_iteration is not None:
                        on_iteration(run.cfg.seed, row)
            if interrupted:
                for run in runs:
                    run.save()
    finally:
        bar.close()
        for run in runs:
            run.close(first.profiles)
    return [run.result(interrupted) for run in runs]


def train_run(cfg: TrainConfig, env_cfg: EnvConfig, profiles: str, out_dir: str | Path,
              resume: bool = False, progress: bool = True,
              on_iteration: Callable[[dict], None] | None = None,
              warn: Callable[[str], None] = lambda message: None) -> RunResult:
    """Train ``cfg.algo`` for ``cfg.iterations`` iterations in total, logging into ``out_dir``: a group of one.

    ``profiles`` is read from the current folder; with ``resume`` the run's own record is used, found from
    the run directory (:func:`checkpoint.profiles_of`), so a run resumes from any folder. Raises
    :class:`TrainingDiverged` when an update goes non-finite (the directory keeps its last checkpoint).
    """
    follow = None if on_iteration is None else (lambda seed, row: on_iteration(row))
    (result,) = train_group([cfg], env_cfg, profiles, [out_dir], resume, progress, follow, warn)
    if result.diverged:
        raise TrainingDiverged(result.diverged)
    return result
