"""Where leakage numbers live: the run's results file (for resuming) and the model's profile table.

``<out>/results.json`` holds the settings (and their hash), the no-information floor and one entry per
finished split; it is rewritten atomically after every split, so an interrupted run keeps what it
finished, and a rerun with the same settings skips those splits. After every split the profile table
gets ``splits[z]["leakage"]`` and ``leakage_meta`` (only those fields; cost fields are untouched),
written with :func:`common.files.write_json` and checked with :func:`profiler.table.validate`.
A profile always describes one set of settings: splits not measured under the current settings are
``null``, except the paper's boundary cases (z = 0: SSIM 1, z = L: SSIM 0, ``measured: false``).
"""

from __future__ import annotations

import copy
import datetime as dt
import json
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from common import files
from common.errors import UserInputError
from inversion.config import THREAT_MODEL, LeakageSettings
from profiler import table as profile_table

RESULTS_NAME = "results.json"
SAMPLES_DIR = "samples"


def splitpriv_version() -> str:
    try:
        return metadata.version("splitpriv")
    except metadata.PackageNotFoundError:
        return "unknown"


def now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat()


@dataclass
class Results:
    """The results file of one run folder."""

    settings: dict[str, Any]
    settings_key: str
    num_units: int
    floor: dict[str, Any] | None = None
    data: dict[str, Any] = field(default_factory=dict)
    run: dict[str, Any] = field(default_factory=dict)
    splits: dict[int, dict[str, Any]] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {"settings": self.settings, "settings_key": self.settings_key, "num_units": self.num_units,
                "threat_model": THREAT_MODEL, "floor": self.floor, "data": self.data, "run": self.run,
                "splits": {str(z): self.splits[z] for z in sorted(self.splits)}}

    def save(self, folder: Path) -> Path:
        return files.write_json(folder / RESULTS_NAME, self.as_json())


def open_results(folder: Path, settings: LeakageSettings, num_units: int, force: bool) -> tuple[Results, str]:
    """Results to continue from, and why: ``resumed`` (same settings), ``new`` or ``recomputed``."""
    fresh = Results(settings.as_json(), settings.key(), num_units)
    path = folder / RESULTS_NAME
    if not path.is_file():
        return fresh, "new"
    try:
        old = json.loads(path.read_text())
        same = old.get("settings_key") == settings.key() and old.get("num_units") == num_units
    except (OSError, json.JSONDecodeError, AttributeError):
        same = False
    if force or not same:
        return fresh, "recomputed (--force)" if force else "recomputed (settings changed)"
    fresh.floor = old.get("floor")
    fresh.splits = {int(z): entry for z, entry in old.get("splits", {}).items()}
    return fresh, "resumed"


def boundary_leakage(split: int, num_units: int) -> dict[str, Any]:
    """The paper's convention: z = 0 sends the raw input (SSIM 1), z = L sends nothing (SSIM 0)."""
    ssim = 1.0 if split == 0 else 0.0
    return {"ssim": ssim, "ssim_ci95": [ssim, ssim], "psnr": None, "psnr_ci95": [None, None], "measured": False}


def profile_leakage(entry: dict[str, Any]) -> dict[str, Any]:
    """Results-file entry → the profile schema's ``leakage`` object."""
    return {"ssim": entry["ssim"], "ssim_ci95": entry["ssim_ci95"], "psnr": entry["psnr"],
            "psnr_ci95": entry["psnr_ci95"], "measured": True}


def leakage_meta(results: Results) -> dict[str, Any]:
    s = results.settings
    return {
        "threat_model": THREAT_MODEL,
        "metric": "SSIM (skimage structural_similarity, data_range=1, channel_axis, 7x7 window) of "
                  "de-normalised [0,1] images, mean over held-out images; PSNR (dB, data_range=1) beside it; "
                  "95 % CI = Student-t interval of the mean over held-out images",
        "weights": s["weights"], "data": results.data, "image_size": s["image_size"],
        "n_train": s["n_train"], "n_test": s["n_test"], "budget": s["budget"], "decoder": s["train"],
        "loss": s["train"]["loss"], "seed": s["seed"], "device": results.run.get("device"),
        "precision": results.run.get("precision"), "floor": results.floor,
        "boundary_convention": "split 0: SSIM 1 (raw input sent), split L: SSIM 0 (nothing sent); not measured",
        "settings_key": results.settings_key, "date": now_iso(), "splitpriv_version": splitpriv_version(),
        "results_file": results.run.get("results_file"),
    }


def read_profile(path: Path, model: str) -> dict[str, Any]:
    if not path.is_file():
        raise UserInputError(f"--profile {path}: no profile table; run `python cli.py profile {model} "
                             f"--format json --out {path}` first")
    return profile_table.read(path)


def update_profile(path: Path, results: Results) -> dict[str, Any]:
    """Write the leakage of every split (finished, boundary or null) and ``leakage_meta`` atomically."""
    table = copy.deepcopy(profile_table.read(path))
    num_units = len(table["units"])
    for z, split in enumerate(table["splits"]):
        if z in (0, num_units):
            split["leakage"] = boundary_leakage(z, num_units)
        elif z in results.splits:
            split["leakage"] = profile_leakage(results.splits[z])
        else:
            split["leakage"] = None
    table["leakage_meta"] = leakage_meta(results)
    profile_table.validate(table, source=str(path))
    files.write_json(path, table)
    return table


def save_samples(folder: Path, name: str, images: np.ndarray) -> Path:
    """``images`` (K × H × W × 3 in [0, 1]) as uint8 ``<folder>/samples/<name>.npy``, written atomically."""
    target = folder / SAMPLES_DIR / f"{name}.npy"
    with files.atomic_open(target, "wb") as fh:
        np.save(fh, np.round(np.clip(images, 0, 1) * 255).astype(np.uint8))
    return target


def load_samples(folder: Path, name: str) -> np.ndarray | None:
    path = folder / SAMPLES_DIR / f"{name}.npy"
    return np.load(path).astype(np.float32) / 255.0 if path.is_file() else None
