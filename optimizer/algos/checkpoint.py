"""Checkpoints of a run directory: one file holding everything needed to resume or evaluate.

``runs/NAME/checkpoint.pt`` = {format, train_config, env_config, profiles, profiles_from_run, trainer state
(networks, optimisers, λ, value normalisers, RNG states, iteration), history of per-iteration metrics}.
``profiles`` is the folder as given (relative to where ``train`` ran); ``profiles_from_run`` the same folder
relative to the run directory, so ``--resume`` finds it from any folder (:func:`profiles_of`). Runs saved
before 2026-12-02 have only ``profiles`` and resume from the folder they were trained in.
Written atomically (:func:`common.files.atomic_open`: temporary file + rename), so an interrupted write
never leaves half a file.

A finished run also writes ``actors.pt`` (:func:`save_actors`): the same configs with only the networks that
act (:data:`ACTOR_MODULES`, ≈ 0.6 MB at the default sizes against 5.7 MB), small enough to keep in the
repository, so a reader can evaluate a committed run without retraining. It evaluates but cannot resume.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from common.errors import UserInputError
from common.files import atomic_open


CHECKPOINT_NAME = "checkpoint.pt"
ACTORS_NAME = "actors.pt"
#: The networks that act (a heuristic layer has none); the critics, optimisers and RNGs only serve training.
ACTOR_MODULES = ("deployment", "user_actor", "alloc_actor")
FORMAT = 2   # 2: in-turn deployment, square-root tilt, env snapshot (format 1 checkpoints cannot load)


def save(run_dir: str | os.PathLike, payload: dict[str, Any]) -> Path:
    """Atomically write ``payload`` to ``run_dir/checkpoint.pt``."""
    target = Path(run_dir) / CHECKPOINT_NAME
    with atomic_open(target, "wb") as fh:
        torch.save({"format": FORMAT, **payload}, fh)
    return target


def save_actors(run_dir: str | os.PathLike, payload: dict[str, Any], states: dict[str, dict]) -> Path:
    """Atomically write ``run_dir/actors.pt``: ``payload`` (configs, dims, profiles) and, of the networks'
    ``states`` (name → state dict), the acting ones."""
    target = Path(run_dir) / ACTORS_NAME
    acting = {name: state for name, state in states.items() if name in ACTOR_MODULES}
    with atomic_open(target, "wb") as fh:
        torch.save({"format": FORMAT, "actors_only": True, **payload, "trainer": {"modules": acting}}, fh)
    return target


def load(run_dir: str | os.PathLike, map_location: str | torch.device = "cpu",
         actors_ok: bool = False) -> dict[str, Any]:
    """Read ``run_dir/checkpoint.pt`` (or a checkpoint file given directly). With ``actors_ok`` (evaluation) a
    folder holding only ``actors.pt`` is read too; its payload has ``actors_only`` set."""
    path = Path(run_dir)
    if path.is_dir():
        only_actors = not (path / CHECKPOINT_NAME).is_file() and (path / ACTORS_NAME).is_file()
        path = path / (ACTORS_NAME if only_actors else CHECKPOINT_NAME)
    if not path.is_file():
        raise UserInputError(f"{path}: no checkpoint here (train with --out first)")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as exc:     # a truncated or foreign file
        raise UserInputError(f"{path}: not a readable checkpoint ({exc.__class__.__name__})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise UserInputError(f"{path}: not a splitpriv training checkpoint (format {FORMAT})")
    if payload.get("actors_only") and not actors_ok:
        raise UserInputError(f"{path}: holds only the run's acting networks; it evaluates (evaluate --checkpoint) "
                             "but cannot resume training")
    return payload


def load_modules(modules: dict[str, torch.nn.Module], states: dict[str, Any], actors_only: bool = False) -> None:
    """Load each network's saved weights (with ``actors_only``, the acting ones); one-line UserInputError if
    the trainer has changed shape since (e.g. a run saved before the users' split head became w(h)·f_z on
    2026-11-30)."""
    for key, module in modules.items():
        if actors_only and key not in ACTOR_MODULES:
            continue
        try:
            module.load_state_dict(states[key])
        except (KeyError, RuntimeError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else key
            raise UserInputError(f"checkpoint: its '{key}' network does not match this version's ({first}); "
                                 "train the run again") from None


def profiles_from_run(profiles: str, run_dir: str | os.PathLike) -> str | None:
    """The profile folder ``profiles`` (relative to the current folder, or absolute) as seen from ``run_dir``;
    ``None`` for the built-in synthetic tables (any name that is no folder)."""
    if not Path(profiles).is_dir():
        return None
    try:
        return os.path.relpath(Path(profiles).resolve(), Path(run_dir).resolve())
    except ValueError:        # another drive (Windows): keep it absolute
        return str(Path(profiles).resolve())


def profiles_of(saved: dict[str, Any], run_dir: str | os.PathLike) -> str:
    """The profile folder of a saved run, as a path from the current folder: ``profiles_from_run`` joined to
    ``run_dir`` when that folder exists, else ``profiles`` as it was given (old runs, ``synthetic``)."""
    folder = Path(run_dir)
    folder = folder if folder.is_dir() else folder.parent     # a checkpoint file given directly
    relative = saved.get("profiles_from_run")
    if relative is not None:
        candidate = os.path.normpath(folder / relative)
        if Path(candidate).is_dir():
            return candidate
    return saved["profiles"]


#: What an actors file keeps of a checkpoint besides the networks.
CONFIG_KEYS = ("train_config", "env_config", "profiles", "profiles_from_run", "dims")


def actors_from_checkpoint(run_dir: str | os.PathLike) -> Path:
    """Write ``run_dir/actors.pt`` from its ``checkpoint.pt`` (runs trained before actors files existed)."""
    saved = load(run_dir)
    return save_actors(run_dir, {key: saved[key] for key in CONFIG_KEYS if key in saved},
                       saved["trainer"]["modules"])
