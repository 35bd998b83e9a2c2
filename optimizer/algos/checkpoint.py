"""Checkpoints of a run directory: one file holding everything needed to resume or evaluate.

``runs/NAME/checkpoint.pt`` = {format, train_config, env_config, profiles, trainer state (networks,
optimisers, λ, value normalisers, RNG states, iteration), history of per-iteration metrics}.
Written atomically (:func:`common.files.atomic_open`: temporary file + rename), so an interrupted write
never leaves half a file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from common.errors import UserInputError
from common.files import atomic_open


CHECKPOINT_NAME = "checkpoint.pt"
FORMAT = 2   # 2: in-turn deployment, square-root tilt, env snapshot (format 1 checkpoints cannot load)


def save(run_dir: str | os.PathLike, payload: dict[str, Any]) -> Path:
    """Atomically write ``payload`` to ``run_dir/checkpoint.pt``."""
    target = Path(run_dir) / CHECKPOINT_NAME
    with atomic_open(target, "wb") as fh:
        torch.save({"format": FORMAT, **payload}, fh)
    return target


def load(run_dir: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read ``run_dir/checkpoint.pt`` (or a checkpoint file given directly)."""
    path = Path(run_dir)
    if path.is_dir():
        path = path / CHECKPOINT_NAME
    if not path.is_file():
        raise UserInputError(f"{path}: no checkpoint here (train with --out first)")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as exc:     # a truncated or foreign file
        raise UserInputError(f"{path}: not a readable checkpoint ({exc.__class__.__name__})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise UserInputError(f"{path}: not a splitpriv training checkpoint (format {FORMAT})")
    return payload


def load_modules(modules: dict[str, torch.nn.Module], states: dict[str, Any]) -> None:
    """Load each network's saved weights; one-line UserInputError if the trainer has changed shape since
    (e.g. a run saved before the users' split head became w(h)·f_z on 2026-11-30)."""
    for key, module in modules.items():
        try:
            module.load_state_dict(states[key])
        except (KeyError, RuntimeError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else key
            raise UserInputError(f"checkpoint: its '{key}' network does not match this version's ({first}); "
                                 "train the run again") from None
