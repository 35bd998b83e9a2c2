"""Printers for profile tables: an aligned text table for people, CSV and JSON for programs.

Printing is kept apart from counting (as in fvcore's ``print_model_statistics``): these functions read
a schema-1 dict and never compute a cost.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any, Iterable, Sequence

from common.text import align_columns
from profiler import leakage_flags

_PREFIXES = ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"))
_MISSING = "-"


def si(value: float | None, unit: str = "") -> str:
    """``1819065856`` → ``"1.819 G"``: four significant digits with an SI prefix (decimal, not binary)."""
    if value is None:
        return _MISSING
    for scale, prefix in _PREFIXES:
        if abs(value) >= scale:
            scaled = value / scale
            digits = 3 if abs(scaled) < 10 else 2 if abs(scaled) < 100 else 1
            return f"{scaled:.{digits}f} {prefix}{unit}"
    return f"{value:g} {unit}".rstrip() if unit else f"{value:g}"


def _ms(value: float | None) -> str:
    return _MISSING if value is None else f"{value:.2f}"


def _shape(shape: Sequence[int]) -> str:
    return "×".join(str(s) for s in shape)


def _ssim(split: dict[str, Any]) -> str:
    return leakage_flags.ssim_cell(split.get("leakage"), missing=_MISSING)


def _heading(table: dict[str, Any]) -> str:
    """Line 1: the input the costs were counted at, and that the weights do not enter them."""
    latency = table.get("latency")
    timing = ("latency not measured" if not latency else
              f"latency: {latency['device']} ({latency.get('device_name') or '?'}), {latency['threads']} threads, "
              f"median of {latency['repeats']} after {latency['warmup']} warm-up")
    return (f"{table['model']}: {len(table['units'])} units; costs at input {_shape(table['input_shape'])} "
            f"({si(table['input_bytes'], 'B')}); weights: n/a for costs (they do not change MACs, bytes or "
            f"params; profiled with {table['weights']}); {timing}")


def unit_label(unit: dict[str, Any]) -> str:
    """The unit's name, or ``first…last`` when it spans modules outside that name (``enc2.0…up1``).

    A residual block named ``layer1.0`` holds only ``layer1.0.*`` and keeps its name; a unit that runs
    on into other modules (a conv with its ReLU and pooling, a U-Net's skip span) shows the range, the
    last module without the prefix it shares with the first (``features.2…4``). Display only: the
    table's ``name`` field is unchanged.
    """
    name, modules = unit["name"], unit.get("modules") or []
    outside = [m for m in modules if m != name and not m.startswith(name + ".")]
    if not outside:
        return name
    first, last = name.split("."), outside[-1].split(".")
    shared = 0
    while shared < min(len(first), len(last)) - 1 and first[shared] == last[shared]:
        shared += 1
    return f"{name}…{'.'.join(last[shared:])}"


def _unit_rows(table: dict[str, Any]) -> list[list[str]]:
    rows = [[str(u["index"]), unit_label(u), si(u["macs"]), si(u["flops"]), si(u.get("other_ops")),
             si(u["params"]), si(u["param_bytes"], "B"), _shape(u["output_shape"]),
             si(u["output_bytes"], "B"), _ms(u["latency_ms"])] for u in table["units"]]
    t = table["totals"]
    rows.append(["", "total", si(t["macs"]), si(t["flops"]), si(t.get("other_ops")), si(t["params"]),
                 si(t["param_bytes"], "B"), "", "", _ms(t.get("latency_ms"))])
    return rows


def _split_rows(table: dict[str, Any]) -> list[list[str]]:
    names = ["(raw input)"] + [unit_label(u) for u in table["units"]]
    return [[str(s["split"]), names[s["split"]], si(s["device_param_bytes"], "B"), si(s["device_macs"]),
             si(s["server_macs"]), si(s["uplink_bytes"], "B"), _ms(s["device_latency_ms"]),
             _ms(s["server_latency_ms"]), _ssim(s)] for s in table["splits"]]


_HANDLING = (("other_ops", "counted by splitpriv as other ops (not in MACs/FLOPs)"),
             ("macs", "counted by a splitpriv formula as MACs (included)"),
             (None, "NOT counted (cost missing)"))


def _uncounted_line(table: dict[str, Any]) -> str:
    """One line: the ops fvcore leaves at 0, grouped by how they were handled, each with its share."""
    items = table.get("uncounted") or []
    if not items:
        return "uncounted ops: none (fvcore counted every op with a cost)"
    groups = []
    for counted_as, heading in _HANDLING:
        members = [i for i in items if i.get("counted_as", "other_ops" if i.get("ops") is not None else None)
                   == counted_as]
        if members:
            cells = [f"{i['op']} x{i['count']}" + ("" if counted_as is None else
                                                   f" ({si(i['ops'])}, {100 * i['share_of_macs']:.2f} % of MACs)")
                     for i in members]
            groups.append(f"{heading}: {', '.join(cells)}")
    return "ops fvcore leaves at 0 — " + "; ".join(groups)


def _leakage_size(meta: dict[str, Any], input_shape: Sequence[int]) -> str:
    """``64 px images (not the 224 px of the costs)`` where leakage and costs were measured at other sizes."""
    size = meta.get("image_size")
    if size is None:
        return "? px images"
    same = list(input_shape[-2:]) == [size, size]
    return f"{size} px images" + ("" if same else f" (the costs above are at {_shape(input_shape[-2:])} px)")


def _leakage_line(table: dict[str, Any], source: str | None) -> list[str]:
    """Line 2: what the leakage column was measured with (its own image size and weights, not line 1's)."""
    meta = table.get("leakage_meta")
    if not meta or not any(s.get("leakage") for s in table["splits"]):
        return []
    where = f" from {source}" if source else ""
    weights = meta.get("weights", "?")
    weights += " (seeded random init)" if weights == "none" else ""
    return [f"leakage SSIM{where}: measured on {_leakage_size(meta, table['input_shape'])} with weights "
            f"{weights}, {meta.get('budget', '?')} budget, seed {meta.get('seed', '?')} "
            "(raw SSIM; 1 at z = 0, 0 at z = L)"]


def format_text(table: dict[str, Any], leakage_source: str | None = None) -> str:
    """The readable table: units (per-layer costs), then every split point's cumulative terms.

    ``leakage_source`` names the file the leakage column was read from, when it was not measured here.
    """
    unit_header = ["unit", "name", "MACs", "FLOPs", "other ops", "params", "param bytes",
                   "output shape", "output bytes", "latency ms"]
    split_header = ["split", "last device unit", "D^U device bytes", "Ω^U device MACs", "Ω^E server MACs",
                    "D^up uplink bytes", "device ms", "server ms", "leakage SSIM"]
    lines = [_heading(table), *_leakage_line(table, leakage_source), ""]
    lines += align_columns(unit_header, _unit_rows(table), left=(1,))
    lines += ["", "split z: units 1..z on the device, z+1..L on the server", ""]
    lines += align_columns(split_header, _split_rows(table), left=(1,))
    lines += leakage_flags.footnotes((s["split"], s.get("leakage")) for s in table["splits"])
    lines += ["", _uncounted_line(table),
              "MACs = multiply-accumulates (fvcore's 'flops'); FLOPs = 2 x MACs; bytes in SI units (1 kB = 1000 B)"]
    return "\n".join(lines) + "\n"


CSV_COLUMNS = ("model", "split", "unit_name", "unit_macs", "unit_flops", "unit_other_ops", "unit_params",
               "unit_param_bytes", "unit_output_shape", "unit_output_bytes", "unit_latency_ms",
               "device_param_bytes", "device_macs", "device_flops", "server_macs", "server_flops",
               "uplink_bytes", "device_latency_ms", "server_latency_ms", "leakage_ssim")


def _csv_rows(table: dict[str, Any]) -> Iterable[list[Any]]:
    for split in table["splits"]:
        z = split["split"]
        unit = table["units"][z - 1] if z else None
        unit_cells = ([unit["name"], unit["macs"], unit["flops"], unit.get("other_ops"), unit["params"],
                       unit["param_bytes"], "x".join(map(str, unit["output_shape"])), unit["output_bytes"],
                       unit["latency_ms"]] if unit else ["(raw input)"] + [None] * 8)
        leak = split.get("leakage")
        yield [table["model"], z, *unit_cells, split["device_param_bytes"], split["device_macs"],
               split["device_flops"], split["server_macs"], split["server_flops"], split["uplink_bytes"],
               split["device_latency_ms"], split["server_latency_ms"], leak["ssim"] if leak else None]


def format_csv(tables: Sequence[dict[str, Any]]) -> str:
    """One row per split point z = 0..L of every table: unit z's own costs beside the cumulative terms."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for table in tables:
        writer.writerows([("" if c is None else c) for c in row] for row in _csv_rows(table))
    return buffer.getvalue()


def format_json(table: dict[str, Any] | list[dict[str, Any]]) -> str:
    return json.dumps(table, indent=1) + "\n"


def format_tables(tables: Sequence[dict[str, Any]], fmt: str,
                  leakage_sources: dict[str, str] | None = None) -> str:
    """All ``tables`` in one format: ``table`` (text), ``csv`` (one header) or ``json`` (one object or a list)."""
    if fmt == "csv":
        return format_csv(tables)
    if fmt == "json":
        return format_json(tables[0] if len(tables) == 1 else list(tables))
    sources = leakage_sources or {}
    return "\n".join(format_text(t, sources.get(t["model"])) for t in tables)
