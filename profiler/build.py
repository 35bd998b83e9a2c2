"""Turn a loaded model into a schema-1 profile table (see :mod:`profiler.table`).

Per unit l: ω_l (MACs, FLOPs), S_l (params, bytes), D^out_l (eq. 1–2) and measured latency. Per split
z = 0..L the paper's cumulative terms (Sec. III-B): D^U = Σ_{m≤z} S_m, Ω^U = Σ_{m≤z} ω_m,
Ω^E = Σ_{m>z} ω_m and D^up = D^out_z (z = 0: the raw input D_raw; z = L: the last unit's output).
Leakage Lea(z) (eq. 3) is left null: ``python cli.py leakage`` fills it in.
"""

from __future__ import annotations

import datetime as dt
import json
import platform
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Protocol, Sequence

import torch

from common.errors import UserInputError
from common.files import locked, write_json
from profiler import table as schema
from profiler.costs import COMPUTE_CONVENTION, count_units, state_sizes, tensor_bytes, uncounted_report
from profiler.graph import split_model
from profiler.latency import LatencyConfig, measure_units
from profiler.zoo import LoadedModel


class Progress(Protocol):
    """What :func:`profile_model` reports while it works (a progress bar in the CLI)."""

    def stage(self, name: str, total: int | None = None) -> None:
        """A new stage begins (``counting``, ``timing``), with its number of steps if known."""

    def step(self) -> None:
        """One step of the current stage is done."""


class _Silent:
    def stage(self, name: str, total: int | None = None) -> None:
        pass

    def step(self) -> None:
        pass


@dataclass(frozen=True)
class ProfileOptions:
    """``latency=None`` skips timing (``--no-latency``); ``command`` is recorded as the generator."""

    latency: LatencyConfig | None = LatencyConfig()
    command: str = ""


def _versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for package in ("splitpriv", "torch", "torchvision", "fvcore"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return versions


def _count(loaded: LoadedModel, modules: list, x: torch.Tensor):
    """:func:`count_units`, turning a model that cannot run on its input shape into a clear user error."""
    try:
        return count_units(modules, x)
    except (RuntimeError, ValueError, IndexError, TypeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        shape = ",".join(map(str, loaded.input_shape))
        raise UserInputError(f"model {loaded.name!r} does not run on input shape {shape} "
                             f"({type(exc).__name__}: {first[:200]})") from None


def _cumulative(values: Sequence[float | None], z: int) -> tuple[Any, Any]:
    """(Σ_{m≤z}, Σ_{m>z}) of per-unit values; ``None`` if any value is missing."""
    if any(v is None for v in values):
        return None, None
    return sum(values[:z]), sum(values[z:])


def _splits(units: list[dict[str, Any]], input_bytes: int) -> list[dict[str, Any]]:
    macs = [u["macs"] for u in units]
    param_bytes = [u["param_bytes"] for u in units]
    latency = [u["latency_ms"] for u in units]
    splits = []
    for z in range(len(units) + 1):
        device_macs, server_macs = _cumulative(macs, z)
        device_ms, server_ms = _cumulative(latency, z)
        splits.append({
            "split": z,
            "device_param_bytes": sum(param_bytes[:z]),
            "device_macs": device_macs, "device_flops": 2 * device_macs,
            "server_macs": server_macs, "server_flops": 2 * server_macs,
            "uplink_bytes": input_bytes if z == 0 else units[z - 1]["output_bytes"],
            "device_latency_ms": device_ms, "server_latency_ms": server_ms,
            "leakage": None,
        })
    return splits


def profile_model(loaded: LoadedModel, options: ProfileOptions = ProfileOptions(),
                  progress: Progress = _Silent()) -> dict[str, Any]:
    """Split ``loaded.model`` into units, count and (optionally) time every unit; return the table dict.

    ``progress`` hears of each stage: ``splitting and counting``, then ``timing L units`` with one step
    per timed or warm-up run (L × (warm-up + repeats) steps).
    """
    x = loaded.example_input()
    progress.stage("splitting and counting")
    split = split_model(loaded.model, x)
    modules = [u.module for u in split.units]
    counts, cuts = _count(loaded, modules, x)
    sizes = state_sizes(modules)
    latencies: list[float | None] = [None] * len(modules)
    latency_block = None
    if options.latency is not None:
        runs = len(modules) * (options.latency.warmup + options.latency.repeats)
        progress.stage(f"timing {len(modules)} units", runs)
        latencies, latency_block = measure_units(modules, cuts[:-1], options.latency, progress.step)
    units = []
    for unit, count, size, out, ms in zip(split.units, counts, sizes, cuts[1:], latencies):
        units.append({
            "index": unit.index, "name": unit.name, "modules": list(unit.modules),
            "macs": count.macs, "flops": 2 * count.macs, "other_ops": sum(count.other_ops.values()),
            "params": size.params, "param_bytes": size.param_bytes,
            "output_shape": list(out.shape[1:]), "output_bytes": tensor_bytes(out),
            "latency_ms": ms,
        })
    input_bytes = tensor_bytes(x)
    total_macs = sum(u["macs"] for u in units)
    return {
        "schema_version": schema.SCHEMA_VERSION,
        "model": loaded.name,
        "input_shape": list(loaded.input_shape),
        "element_bytes": x.element_size(),
        "input_bytes": input_bytes,
        "weights": loaded.weights_label,
        "compute_convention": COMPUTE_CONVENTION,
        "generator": {"command": options.command, **_versions(),
                      "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")},
        "latency": latency_block,
        "totals": {
            "macs": total_macs, "flops": 2 * total_macs, "other_ops": sum(u["other_ops"] for u in units),
            "params": sum(u["params"] for u in units), "param_bytes": sum(u["param_bytes"] for u in units),
            "latency_ms": None if latency_block is None else sum(latencies),
        },
        "uncounted": uncounted_report(counts),
        "units": units,
        "splits": _splits(units, input_bytes),
        "leakage_meta": None,
    }


def _structure(table: dict[str, Any]) -> tuple:
    return (table.get("model"), table.get("input_shape"),
            [(u.get("name"), u.get("modules")) for u in table.get("units", [])])


def keep_leakage(new: dict[str, Any], old: dict[str, Any] | None) -> dict[str, Any]:
    """Carry leakage (active set and history) and priced defenses over from ``old`` if it profiles the same model with the same
    units; else ``new`` as it is (:func:`write_profile` refuses to write over measured leakage of other
    units, so nothing measured is dropped from a file)."""
    if not old or not _same_units(old, new):
        return new
    for split, previous in zip(new["splits"], old["splits"]):
        split["leakage"] = previous.get("leakage")
    new["leakage_meta"] = old.get("leakage_meta")
    if old.get("leakage_history"):
        new["leakage_history"] = old["leakage_history"]   # earlier leakage sets (inversion.leakage_sets)
    if old.get("defenses"):
        new["defenses"] = old["defenses"]                 # priced defenses (inversion.defense.table)
    return new


def _same_units(old: dict[str, Any], new: dict[str, Any]) -> bool:
    return _structure(old) == _structure(new) and len(old.get("splits", [])) == len(new["splits"])


def existing_table(path: Path) -> dict[str, Any] | None:
    """The JSON object in ``path``, or ``None`` when there is none (missing, unreadable, not JSON)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def check_keeps_leakage(path: str | Path, table: dict[str, Any]) -> None:
    """Refuse (one line) to write ``table`` over a file whose measured leakage it could not keep: a table of
    other units (:func:`keep_leakage` would drop it), so a measured value is never lost to a re-profile."""
    path = Path(path)
    if path.is_dir():
        raise UserInputError(f"--out {path}: is a folder; give a file name, or use --all for a folder")
    old = existing_table(path)
    measured = old and (old.get("leakage_meta") or old.get("leakage_history") or old.get("defenses"))
    if measured and not _same_units(old, table):
        raise UserInputError(f"--out {path}: holds leakage or defenses measured for other units than this profile's; "
                             "writing would drop it: move the file away or give another --out")


def write_profile(path: str | Path, table: dict[str, Any]) -> Path:
    """Validate and write ``table`` atomically, keeping leakage already measured for the same units.

    Over an existing file, under the table's lock (:func:`common.files.locked`), so a ``leakage`` run
    merging into it at the same moment loses nothing (a new file needs none: ``leakage`` only writes
    tables that exist, and no lock sidecar is left beside it); refused as :func:`check_keeps_leakage` says."""
    path = Path(path)
    check_keeps_leakage(path, table)
    if not path.exists():
        schema.validate(table, source=str(path))
        return write_json(path, table)
    with locked(path):
        check_keeps_leakage(path, table)                     # as the file is now, under the lock
        table = keep_leakage(table, existing_table(path))
        schema.validate(table, source=str(path))
        return write_json(path, table)
