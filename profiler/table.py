"""The profile table: one JSON file per model, the contract between the three parts.

The profiler writes the cost fields, ``inversion`` adds the leakage fields, the optimizer reads both.
Every quantity carries its unit in its name: ``*_bytes`` are bytes (not KiB), ``*_ms`` milliseconds,
``macs`` multiply-accumulates (fvcore's "flop"), ``flops`` = 2 × MACs.

Schema version 1::

    {
      "schema_version": 1,
      "model": "resnet18",
      "input_shape": [3, 224, 224],          # C, H, W of one input (batch excluded)
      "element_bytes": 4,                    # float32 activations and parameters
      "input_bytes": 602112,                 # D_raw: bytes of one raw input (what split 0 sends)
      "weights": "none",                     # "none" = random init, a torchvision weights name, or a path
      "compute_convention": "...",           # prose: MACs vs FLOPs
      "generator": {...},                    # versions, command, date
      "latency": {...} | null,               # how latency was measured (device, threads, repeats,
                                             #   warm-up, load_average_1m of the machine at the time)
      "totals": {"macs", "flops", "other_ops", "params", "param_bytes", "latency_ms"},
      "uncounted": [{"op", "count", "ops", "share_of_macs", "counted_as", "note"}],
                                             # ops fvcore leaves at 0 and how they were handled:
                                             #   counted_as "other_ops", "macs" (a registered formula
                                             #   counted them into macs) or null (cost missing)
      "units": [                              # unit l = 1..L: layers run on the device for split >= l
        {"index", "name", "modules", "macs", "flops", "other_ops", "params", "param_bytes",
         "output_shape", "output_bytes", "latency_ms"}
      ],                                      # other_ops: comparisons/adds of ReLU, pooling, residual
                                             #   add — not MACs; param_bytes includes float buffers
                                             #   (BN running stats) the device must download
      "splits": [                             # split z = 0..L: units 1..z on the device, z+1..L on the server
        {"split", "device_param_bytes",       # D^U  = Σ_{m≤z} S_m          (paper eq. 4 terms)
         "device_macs", "device_flops",       # Ω^U  = Σ_{m≤z} ω_m
         "server_macs", "server_flops",       # Ω^E  = Σ_{m>z} ω_m
         "uplink_bytes",                      # D^up = D^out_z (z = 0: the raw input), eq. 1–2
         "device_latency_ms", "server_latency_ms",
         "leakage": null | {"ssim", "ssim_ci95", "psnr", "psnr_ci95", "measured"}}   # Lea(z), eq. 3
      ],
      "leakage_meta": null | {...}            # threat model, weights, data, image size, seed, floor, ...
    }

Leakage is raw SSIM in [0, 1] (never min–max normalised). By the paper's convention split 0 (raw input
sent) has SSIM 1 and split L (nothing sent) SSIM 0; those two entries have ``"measured": false``.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from common.errors import UserInputError
from common.files import read_text


SCHEMA_VERSION = 1

UNIT_FIELDS = ("index", "name", "modules", "macs", "flops", "params", "param_bytes",
               "output_shape", "output_bytes", "latency_ms")
SPLIT_FIELDS = ("split", "device_param_bytes", "device_macs", "device_flops", "server_macs",
                "server_flops", "uplink_bytes", "device_latency_ms", "server_latency_ms")
LEAKAGE_FIELDS = ("ssim", "ssim_ci95", "psnr", "psnr_ci95", "measured")
TOP_FIELDS = ("schema_version", "model", "input_shape", "element_bytes", "input_bytes", "weights",
              "totals", "units", "splits")
_NON_NEGATIVE = ("macs", "flops", "params", "param_bytes", "output_bytes", "device_param_bytes",
                 "device_macs", "device_flops", "server_macs", "server_flops", "uplink_bytes",
                 "input_bytes", "element_bytes")


def _fail(source: str, field: str, why: str) -> UserInputError:
    return UserInputError(f"{source}: field '{field}' {why}")


def _check_number(source: str, where: str, key: str, value: Any, optional: bool = False) -> None:
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _fail(source, f"{where}{key}", f"must be a finite number, got {value!r}")
    if key in _NON_NEGATIVE and value < 0:
        raise _fail(source, f"{where}{key}", f"must be >= 0, got {value!r}")


def _check_entry(source: str, where: str, entry: Any, fields: tuple[str, ...], counter: str,
                 expected: int) -> None:
    """One unit or split: an object holding every field of ``fields``, numbered ``expected``."""
    if not isinstance(entry, dict):
        raise _fail(source, where.rstrip("."), f"must be an object, got {entry!r}")
    for key in fields:
        if key not in entry:
            raise _fail(source, where + key, "is missing")
    if entry[counter] != expected:
        raise _fail(source, where + counter, f"must be {expected}, got {entry[counter]!r}")


def validate(table: dict[str, Any], source: str = "profile", require_leakage: bool = False) -> None:
    """Raise :class:`UserInputError` naming ``source`` and the field if ``table`` breaks schema 1.

    Checks presence and type of every field, non-negative bytes and counts, one unit per index
    1..L, one split per index 0..L with consistent sums, and leakage SSIM in [0, 1].
    """
    if not isinstance(table, dict):
        raise UserInputError(f"{source}: not a JSON object")
    for key in TOP_FIELDS:
        if key not in table:
            raise _fail(source, key, "is missing")
    if table["schema_version"] != SCHEMA_VERSION:
        raise _fail(source, "schema_version",
                    f"is {table['schema_version']!r}; this splitpriv reads version {SCHEMA_VERSION} "
                    "(regenerate with `python cli.py profile`)")
    if not isinstance(table["model"], str) or not table["model"]:
        raise _fail(source, "model", f"must be a non-empty model name, got {table['model']!r}")
    shape = table["input_shape"]
    if not (isinstance(shape, list) and shape and all(isinstance(s, int) and s > 0 for s in shape)):
        raise _fail(source, "input_shape", f"must be a list of positive ints, got {shape!r}")
    for key in ("input_bytes", "element_bytes"):
        _check_number(source, "", key, table[key])
    units, splits = table["units"], table["splits"]
    if not isinstance(units, list) or not units:
        raise _fail(source, "units", "must be a non-empty list")
    if not isinstance(splits, list) or len(splits) != len(units) + 1:
        raise _fail(source, "splits", f"must list {len(units) + 1} split points (0..L), "
                                      f"got {len(splits) if isinstance(splits, list) else splits!r}")
    for i, unit in enumerate(units, start=1):
        where = f"units[{i - 1}]."
        _check_entry(source, where, unit, UNIT_FIELDS, "index", i)
        for key in ("macs", "flops", "params", "param_bytes", "output_bytes"):
            _check_number(source, where, key, unit[key])
        _check_number(source, where, "latency_ms", unit["latency_ms"], optional=True)
    for z, split in enumerate(splits):
        where = f"splits[{z}]."
        _check_entry(source, where, split, SPLIT_FIELDS, "split", z)
        for key in SPLIT_FIELDS[1:7]:
            _check_number(source, where, key, split[key])
        for key in ("device_latency_ms", "server_latency_ms"):
            _check_number(source, where, key, split[key], optional=True)
        sent = table["input_bytes"] if z == 0 else units[z - 1]["output_bytes"]
        if split["uplink_bytes"] != sent:
            raise _fail(source, where + "uplink_bytes", f"is {split['uplink_bytes']} but the tensor crossing "
                                                        f"split {z} has {sent} bytes")
        for kind in ("macs", "flops"):
            device = sum(u[kind] for u in units[:z])
            server = sum(u[kind] for u in units[z:])
            if (split[f"device_{kind}"], split[f"server_{kind}"]) != (device, server):
                raise _fail(source, f"{where}device_{kind}", f"and server_{kind} must sum units 1..{z} and "
                                                             f"{z + 1}..L ({device}, {server})")
        leak = split.get("leakage")
        if leak is None:
            if require_leakage:
                raise _fail(source, where + "leakage",
                            f"is missing; run `python cli.py leakage --model {table['model']}` first")
            continue
        if not isinstance(leak, dict):
            raise _fail(source, where + "leakage", f"must be null or an object, got {leak!r}")
        for key in LEAKAGE_FIELDS:
            if key not in leak:
                raise _fail(source, where + "leakage." + key, "is missing")
        ssim = leak["ssim"]
        if isinstance(ssim, bool) or not isinstance(ssim, (int, float)) or not 0.0 <= ssim <= 1.0:
            raise _fail(source, where + "leakage.ssim", f"must be an SSIM in [0, 1], got {ssim!r}")


def read(path: str | os.PathLike, require_leakage: bool = False) -> dict[str, Any]:
    """Load and validate one profile table; errors name the file and the field."""
    path = Path(path)
    text = read_text(path, "profile")
    try:
        table = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserInputError(f"{path}: not valid JSON ({exc.msg}: line {exc.lineno}, column {exc.colno})") from None
    validate(table, source=str(path), require_leakage=require_leakage)
    return table


def read_dir_with_files(folder: str | os.PathLike, require_leakage: bool = False
                        ) -> tuple[dict[str, dict[str, Any]], dict[str, Path]]:
    """All ``*.json`` tables of a folder keyed by model name, each validated, and the file of each."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserInputError(f"{folder}: no such profile folder")
    paths = sorted(folder.glob("*.json"))
    if not paths:
        raise UserInputError(f"{folder}: no *.json profile tables in this folder (nor in {folder / 'profiles'}); "
                             "give the folder that holds them, e.g. data/profiles")
    tables: dict[str, dict[str, Any]] = {}
    files: dict[str, Path] = {}
    for path in paths:
        table = read(path, require_leakage=require_leakage)
        model = table["model"]
        if model in tables:
            raise UserInputError(f"{path}: model {model!r} has a second table in {folder} "
                                 f"(also {files[model].name}); keep one")
        tables[model], files[model] = table, path
    return tables, files


def read_dir(folder: str | os.PathLike, require_leakage: bool = False) -> dict[str, dict[str, Any]]:
    """All ``*.json`` tables of a folder, keyed by model name, each validated."""
    return read_dir_with_files(folder, require_leakage)[0]


def follow_profile_folder(folder: str | os.PathLike) -> tuple[str, str | None]:
    """``(folder, None)``, or, for a folder without ``*.json`` tables whose ``profiles/`` subfolder has some
    (``--profiles data/``, the repository's ``data/``), that subfolder and a one-line note saying so."""
    path = Path(folder)
    if not path.is_dir() or any(path.glob("*.json")):
        return str(folder), None
    inner = path / "profiles"
    count = len(list(inner.glob("*.json"))) if inner.is_dir() else 0
    if not count:
        return str(folder), None
    return str(inner), f"{folder}: using {inner}/ ({count} table{'s' if count != 1 else ''})"
