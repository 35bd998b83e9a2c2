"""Where leakage numbers live: the run's results file and the model's profile table.

``<out>/results.json`` holds the settings (and their hash), the no-information floor and one entry per
finished split (with every held-out image's SSIM and the decoder's convergence curve); it is rewritten
atomically after every split. A results file made under other settings is moved to
``<out>/previous/<settings_key>/`` first, never overwritten.

After every split the profile table gets this run's set (only leakage fields; cost fields are
untouched) under the rules of :mod:`inversion.leakage_sets`: the active set changes only when the new
settings have measured every split (or ``--force``), and every set measured before stays in the table.
Each write holds the table's lock (:func:`common.files.locked`), re-reads the table and merges into it
only the splits this run changed (measured, redone, or read from its results file), so concurrent
runs on one table lose nothing. Tables are written with :func:`common.files.write_json` and checked
with :func:`profiler.table.validate`.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from common import files
from common.errors import UserInputError
from inversion import consistency, leakage_sets
from inversion.config import THREAT_MODEL, LeakageSettings
from profiler import table as profile_table

RESULTS_NAME = "results.json"
WIDTH_FIELDS = ("feature_width", "n_train", "n_fit", "data_limited")   # vectors: is the attacker data-limited?
SAMPLES_DIR = "samples"
PROVENANCE_FIELDS = ("legacy_settings_key", "rekeyed")   # a set's history that no run writes (the re-key script)
KEY_FORMULA = ("sha256 of the settings as sorted JSON (model, weights label, data, image size, budget, seed, "
               "decoder, n_train, n_test, victim = {weights_sha256, structure_sha256, precision, device_kind}), "
               "first 16 hex digits; inversion/config.py LeakageSettings.key")


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
    monotonicity: list[dict[str, Any]] = field(default_factory=list)
    #: the table's entries of this set when the run opened it ({z: profile leakage}); what differs from
    #: them is this run's to write (:func:`update_profile`). Not saved.
    baseline: dict[int, dict[str, Any]] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {"settings": self.settings, "settings_key": self.settings_key, "num_units": self.num_units,
                "threat_model": THREAT_MODEL, "floor": self.floor, "data": self.data, "run": self.run,
                "splits": {str(z): self.splits[z] for z in sorted(self.splits)},
                "monotonicity": self.monotonicity}

    def save(self, folder: Path) -> Path:
        return files.write_json(folder / RESULTS_NAME, self.as_json())


def open_results(folder: Path, settings: LeakageSettings, num_units: int, table: dict[str, Any],
                 redo: tuple[int, ...] = ()) -> tuple[Results, str]:
    """Results to continue from, and why: ``new``, ``resumed from <where>``.

    Finished splits come from the profile table (active set or a partial one with the same settings)
    and from ``<folder>/results.json`` when its settings match; the results file's entries win (they
    carry more detail). A results file under other settings is archived, never overwritten
    (:func:`archive_results`). Splits in ``redo`` are dropped so they are measured again.
    """
    key = settings.key()
    fresh = Results(settings.as_json(), key, num_units)
    sources = []
    found = leakage_sets.find_set(table, key)
    if found is not None:
        where, entries, meta = found
        fresh.floor = meta.get("floor")
        fresh.splits.update({z: results_entry(v) for z, v in entries.items()})
        fresh.baseline = dict(entries)
        if entries:
            sources.append(f"the table ({where} set)")
    old = _read_results(folder / RESULTS_NAME)
    if old is not None and old.get("settings_key") == key and old.get("num_units") == num_units:
        fresh.floor = old.get("floor") or fresh.floor
        fresh.splits.update({int(z): entry for z, entry in old.get("splits", {}).items()})
        if old.get("splits"):
            sources.append("the results file")
    for z in redo:
        fresh.splits.pop(z, None)
    status = f"resumed from {' and '.join(sources)}" if fresh.splits else "new"
    return fresh, status + (f", redo {list(redo)}" if redo else "")


def _read_results(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        old = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return old if isinstance(old, dict) else None


def archive_results(folder: Path, settings_key: str) -> Path | None:
    """Move a results file (and its samples) made under other settings to ``previous/<key>/``."""
    old = _read_results(folder / RESULTS_NAME)
    if old is None or old.get("settings_key") == settings_key:
        return None
    target = folder / "previous" / str(old.get("settings_key") or "unknown")
    suffix = 0
    while target.exists():
        suffix += 1
        target = target.with_name(f"{target.name.split('.')[0]}.{suffix}")
    target.mkdir(parents=True)
    (folder / RESULTS_NAME).replace(target / RESULTS_NAME)
    if (folder / SAMPLES_DIR).is_dir():
        (folder / SAMPLES_DIR).replace(target / SAMPLES_DIR)
    return target


def boundary_leakage(split: int, num_units: int) -> dict[str, Any]:
    """The paper's convention: z = 0 sends the raw input (SSIM 1), z = L sends nothing (SSIM 0)."""
    ssim = 1.0 if split == 0 else 0.0
    return {"ssim": ssim, "ssim_ci95": [ssim, ssim], "psnr": None, "psnr_ci95": [None, None], "measured": False}


def profile_leakage(entry: dict[str, Any]) -> dict[str, Any]:
    """Results-file entry → the profile schema's ``leakage`` object (with per-image SSIM and convergence)."""
    leak = {"ssim": entry["ssim"], "ssim_ci95": entry["ssim_ci95"], "psnr": entry["psnr"],
            "psnr_ci95": entry["psnr_ci95"], "measured": True}
    for key in ("feature_shape", "decoder_input", "convergence", *WIDTH_FIELDS):
        if key in entry:
            leak[key] = entry[key]
    if "ssim_per_image" in entry:
        leak["ssim_per_image"] = " ".join(f"{v:.4f}" for v in entry["ssim_per_image"])
    return leak


def results_entry(leak: dict[str, Any]) -> dict[str, Any]:
    """Profile ``leakage`` object → a results-file entry (the inverse of :func:`profile_leakage`)."""
    entry = {k: v for k, v in leak.items() if k != "measured"}
    if isinstance(entry.get("ssim_per_image"), str):
        entry["ssim_per_image"] = [float(v) for v in entry["ssim_per_image"].split()]
    return entry


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
        "precision": results.run.get("precision"), "victim": s.get("victim"), "floor": results.floor,
        "boundary_convention": "split 0: SSIM 1 (raw input sent), split L: SSIM 0 (nothing sent); not measured",
        "settings_key": results.settings_key, "settings_key_formula": KEY_FORMULA, "date": now_iso(), "splitpriv_version": splitpriv_version(),
        "results_file": results.run.get("results_file"),
        "monotonicity": results.monotonicity,
    }


def read_profile(path: Path, model: str) -> dict[str, Any]:
    if not path.is_file():
        where = (" (a user model's table lives in profiles/, outside data/profiles/ which evaluate and train "
                 "read; copy it there yourself once its numbers are final)") if ":" in model else ""
        raise UserInputError(f"--profile {path}: no profile table; run `python cli.py profile --model {model} "
                             f"--format json --out {path}` first{where}")
    return profile_table.read(path)


def update_profile(path: Path, results: Results, complete: bool, force: bool) -> str:
    """Write this run's set into the table under :mod:`inversion.leakage_sets`' rules, atomically.

    Under the table's lock: re-read the table, merge the splits this run changed (those that differ from
    ``results.baseline``) into the set as the table holds it now, and write. The set's completeness and
    monotonicity check are those of the merged set (``complete``, this run's own view, may only add).
    Returns where the set went: ``"active"`` (what ``evaluate``/``train`` read) or ``"partial"``; a run that
    changed no value of the active set writes nothing.
    A smoke-budget set never becomes active unless ``force``. Cost fields are never touched.
    """
    own = {z: profile_leakage(e) for z, e in results.splits.items()}
    own = {z: leak for z, leak in own.items() if leak != results.baseline.get(z)}
    with files.locked(path):
        table = profile_table.read(path)
        found = leakage_sets.find_set(table, results.settings_key)
        if not own and found is not None and found[0] == "active":
            return "active"               # nothing changed (a redo that reproduced its value): nothing to write
        num_units = len(table["units"])
        merged = leakage_sets.merged_entries(table, results.settings_key, own)
        complete = complete or leakage_sets.is_complete(table, merged)
        boundary = {z: boundary_leakage(z, num_units) for z in (0, num_units)}
        meta = _kept_provenance(table, results.settings_key) | leakage_meta(results) | {"complete": complete}
        meta["monotonicity"] = consistency.monotonicity_violations(
            {z: results_entry(v) for z, v in merged.items()})
        table, where = leakage_sets.place_set(table, results.settings_key, meta, own, boundary, complete,
                                             force, now_iso(), may_activate=results.settings["budget"] != "smoke")
        profile_table.validate(table, source=str(path))
        files.write_json(path, table)
    results.baseline.update(own)
    return where


def _kept_provenance(table: dict[str, Any], key: str) -> dict[str, Any]:
    """Fields of the table's set ``key`` that a run does not write itself (``legacy_settings_key`` and
    ``rekeyed`` of benchmarks/rekey_leakage_sets.py): a ``--redo`` or resume updates the set, it does not
    erase where its key came from."""
    found = leakage_sets.find_set(table, key)
    return {k: v for k, v in found[2].items() if k in PROVENANCE_FIELDS} if found else {}


def save_samples(folder: Path, name: str, images: np.ndarray) -> Path:
    """``images`` (K × H × W × 3 in [0, 1]) as uint8 ``<folder>/samples/<name>.npy``, written atomically."""
    target = folder / SAMPLES_DIR / f"{name}.npy"
    with files.atomic_open(target, "wb") as fh:
        np.save(fh, np.round(np.clip(images, 0, 1) * 255).astype(np.uint8))
    return target


def load_samples(folder: Path, name: str) -> np.ndarray | None:
    path = folder / SAMPLES_DIR / f"{name}.npy"
    return np.load(path).astype(np.float32) / 255.0 if path.is_file() else None


def switch_active_set(path: Path, key: str) -> tuple[str, str | None]:
    """Make the table's complete set ``key`` (or a unique prefix of it) the active one, atomically; the set
    active before stays in ``leakage_history``. Returns (the key made active, the key active before).
    A refused key is refused before the table's lock is taken (nothing is written, not even the lock)."""
    chosen, before = _set_to_activate(profile_table.read(path), path, key)
    if chosen["where"] == "active":
        return chosen["key"], before
    with files.locked(path):
        table = profile_table.read(path)                     # as it is now, under the lock
        chosen, before = _set_to_activate(table, path, chosen["key"])
        if chosen["where"] != "active":
            table = leakage_sets.activate(table, chosen["key"], now_iso())
            profile_table.validate(table, source=str(path))
            files.write_json(path, table)
    return chosen["key"], before


def _set_to_activate(table: dict[str, Any], path: Path, key: str) -> tuple[dict[str, Any], str | None]:
    """The set ``key`` names (from :func:`leakage_sets.describe`) and the active key; refusals as user errors."""
    sets = [s for s in leakage_sets.describe(table) if s["where"] != leakage_sets.REDONE]
    matches = sorted({s["key"] for s in sets if s["key"] and s["key"].startswith(key)})
    if len(matches) != 1:
        known = ", ".join(f"{s['key']} ({s['where']})" for s in sets) or "none"
        what = "matches several sets" if matches else "is not a set of this table"
        raise UserInputError(f"--activate {key}: {what} (sets of {path}: {known})")
    chosen = next(s for s in sets if s["key"] == matches[0])
    before = leakage_sets.active_key(table)
    if chosen["where"] == "active":
        return chosen, before
    if not chosen["complete"]:
        raise UserInputError(f"--activate {chosen['key']}: the set has measured {chosen['measured']} of "
                             f"{chosen['of']} splits; finish it by rerunning `leakage` with its settings")
    if chosen["meta"].get("budget") == "smoke":
        raise UserInputError(f"--activate {chosen['key']}: a smoke-budget set is a wiring check, its numbers "
                             "are not measurements")
    return chosen, before
