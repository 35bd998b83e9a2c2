"""A training run with its run directory: resolved config, metrics CSV, TensorBoard, checkpoints, PNGs.

``runs/NAME/``: ``config.json`` (resolved TrainConfig + EnvConfig + profile source), ``metrics.csv``
(one row per iteration), ``tb/`` (TensorBoard), ``checkpoint.pt`` (see :mod:`.checkpoint`), ``curves.png``
(training curves). Ctrl-C finishes the current iteration, writes the checkpoint and stops (a second
Ctrl-C aborts at once; the checkpoint of the previous iteration stays valid). ``resume=True``
continues from the checkpoint and reproduces, on CPU, the numbers of an uninterrupted run.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from tqdm import tqdm

from common.errors import UserInputError
from common.files import atomic_open
from optimizer.algos import checkpoint
from optimizer.algos.config import TrainConfig
from optimizer.algos.hc_mappo_l import Trainer
from optimizer.algos.logging import MetricsCSV, TensorBoardLog, plot_curves
from optimizer.config import EnvConfig, from_dict, to_dict
from optimizer.env import ServiceCatalog

SYNTHETIC = "synthetic"


def load_catalog(profiles: str, env_cfg: EnvConfig) -> ServiceCatalog:
    """Profile folder → catalog; ``"synthetic"`` uses the env's SYNTHETIC tables (labelled as such)."""
    if profiles == SYNTHETIC:
        from optimizer.env.synthetic import synthetic_zoo
        return ServiceCatalog.from_profiles(synthetic_zoo(), env_cfg.services_per_model, env_cfg.compute_unit)
    if not Path(profiles).is_dir():
        raise UserInputError(f"--profiles {profiles}: not a folder of profile tables (or 'synthetic')")
    return ServiceCatalog.from_profiles(profiles, env_cfg.services_per_model, env_cfg.compute_unit)


@dataclass
class RunResult:
    run_dir: Path
    algo: str
    delay_limit_s: float       # τ̄ of the run's env config
    iterations: int            # iterations completed in total
    interrupted: bool
    history: list[dict[str, Any]]


class _DeferredInterrupt:
    """First SIGINT sets a flag (the loop stops at the next iteration boundary); the second aborts."""

    def __init__(self) -> None:
        self.requested = False
        self._previous = None

    def __enter__(self) -> "_DeferredInterrupt":
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        self.requested = True
        signal.signal(signal.SIGINT, self._previous or signal.default_int_handler)

    def __exit__(self, *exc) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


def _payload(trainer: Trainer, cfg: TrainConfig, env_cfg: EnvConfig, profiles: dict[str, Any],
             history: list[dict]) -> dict[str, Any]:
    return {"train_config": cfg.to_dict(), "env_config": to_dict(env_cfg), **profiles,
            "dims": trainer.dims.__dict__, "trainer": trainer.state_dict(), "history": history}


def train_run(cfg: TrainConfig, env_cfg: EnvConfig, profiles: str, out_dir: str | Path,
              resume: bool = False, progress: bool = True,
              on_iteration: Callable[[dict], None] | None = None,
              warn: Callable[[str], None] = lambda message: None) -> RunResult:
    """Train ``cfg.algo`` for ``cfg.iterations`` iterations in total, logging into ``out_dir``.

    ``warn`` receives one line when the profile tables' leakage settings differ (see the catalog).
    ``profiles`` is read from the current folder; with ``resume`` the run's own record is used, found from
    the run directory (:func:`checkpoint.profiles_of`), so a run resumes from any folder.
    """
    run_dir = Path(out_dir)
    history: list[dict[str, Any]] = []
    state = None
    if resume:
        saved = checkpoint.load(run_dir)
        iterations = cfg.iterations
        cfg = TrainConfig(**{**saved["train_config"], "iterations": iterations})
        env_cfg, profiles = from_dict(EnvConfig, saved["env_config"]), checkpoint.profiles_of(saved, run_dir)
        if profiles != SYNTHETIC and not Path(profiles).is_dir():
            where = ("recorded relative to the folder it was trained in: resume from there once, then from anywhere"
                     if "profiles_from_run" not in saved else f"nor {saved['profiles_from_run']} from {run_dir}")
            raise UserInputError(f"--resume --out {run_dir}: its profile tables {profiles} are not found ({where})")
        # an old run (saved with ``profiles`` alone) gains ``profiles_from_run`` here
        from_run = saved.get("profiles_from_run") or checkpoint.profiles_from_run(profiles, run_dir)
        record = {"profiles": saved["profiles"], "profiles_from_run": from_run}
        state, history = saved["trainer"], list(saved["history"])
    elif (run_dir / checkpoint.CHECKPOINT_NAME).exists():
        raise UserInputError(f"--out {run_dir}: holds a run already; add --resume or pick another --out")
    else:
        record = {"profiles": profiles, "profiles_from_run": checkpoint.profiles_from_run(profiles, run_dir)}
    catalog = load_catalog(profiles, env_cfg)
    if catalog.leakage_warning:
        warn(catalog.leakage_warning)
    trainer = Trainer(cfg, env_cfg, catalog)
    if state is not None:
        trainer.load_state_dict(state)
    run_dir.mkdir(parents=True, exist_ok=True)
    resolved = {"train": cfg.to_dict(), "env": to_dict(env_cfg), **record,
                "synthetic_profiles": profiles == SYNTHETIC, "services": list(catalog.service_names),
                "device": str(trainer.device), "precision": "bf16" if trainer.bf16 else "fp32"}
    with atomic_open(run_dir / "config.json") as fh:
        json.dump(resolved, fh, indent=2)
    csv_log = MetricsCSV(run_dir / "metrics.csv")
    csv_log.rewrite(history)
    tb = TensorBoardLog(run_dir, cfg.tensorboard)
    tau_bar = env_cfg.cost.delay_limit_s
    slots = history[-1]["env_slots"] if history else 0
    wall = history[-1]["wall_s"] if history else 0.0
    interrupted = False
    bar = tqdm(total=cfg.iterations, initial=trainer.iteration, desc=cfg.algo, file=sys.stderr,
               disable=not progress, dynamic_ncols=True)
    try:
        with _DeferredInterrupt() as interrupt:
            while trainer.iteration < cfg.iterations:
                if interrupt.requested:
                    interrupted = True
                    if history:
                        checkpoint.save(run_dir, _payload(trainer, cfg, env_cfg, record, history))
                    break
                start = time.perf_counter()
                row = trainer.train_iteration()
                slots += env_cfg.slots_per_episode * cfg.num_envs
                wall += time.perf_counter() - start
                row.update(env_slots=slots, wall_s=wall)
                history.append(row)
                csv_log.append(row)
                tb.log(row)
                last = trainer.iteration == cfg.iterations
                if last or trainer.iteration % cfg.checkpoint_every == 0:
                    checkpoint.save(run_dir, _payload(trainer, cfg, env_cfg, record, history))
                bar.update(1)
                bar.set_postfix_str(f"cost {row['user_cost']:.1f} delay {row['delay_s']:.2f}/{tau_bar:g}s "
                                    f"λ {row['lambda']:.3f}")
                if on_iteration is not None:
                    on_iteration(row)
    finally:
        bar.close()
        tb.close()
        plot_curves(history, run_dir, tau_bar, title=f"{cfg.algo} (seed {cfg.seed}, profiles: {profiles})")
    return RunResult(run_dir, cfg.algo, tau_bar, trainer.iteration, interrupted, history)
