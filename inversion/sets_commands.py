"""Click command ``leakage-sets``: list the leakage sets a profile table holds, switch the active one."""

from __future__ import annotations

from pathlib import Path

import click

from common.text import align_columns
from inversion import leakage_sets
from inversion.store import switch_active_set
from profiler import table as profile_table


SETTINGS = ("weights", "data", "image_size", "n_train", "n_test", "budget", "loss", "seed", "decoder", "victim")
HASH_DIGITS = 12                       # a *_sha256 is shown by its first digits


def _flat(value: object, prefix: str = "") -> dict[str, object]:
    """Nested settings as {leaf name: value}; a data set by its name."""
    if isinstance(value, dict):
        if "name" in value and prefix == "data":
            return {"data": value["name"]}
        out: dict[str, object] = {}
        for key, inner in value.items():
            out |= _flat(inner, key)
        return out
    if prefix.endswith("_sha256") and isinstance(value, str):
        return {prefix: value[:HASH_DIGITS]}
    return {prefix: value}


def _differences(meta: dict, reference: dict) -> str:
    """This set's settings that differ from the reference set's, as ``name=value``. The victim's hashes are
    compared only when both sets record them (sets keyed before 2026-12-02 do not)."""
    names = [n for n in SETTINGS if n != "victim" or (meta.get("victim") and reference.get("victim"))]
    mine = {k: v for name in names for k, v in _flat(meta.get(name), name).items()}
    theirs = {k: v for name in names for k, v in _flat(reference.get(name), name).items()}
    changed = [f"{k}={mine.get(k, '-')}" for k in mine.keys() | theirs.keys() if mine.get(k) != theirs.get(k)]
    return " ".join(sorted(changed)) or "-"


def sets_table(table: dict) -> str:
    """One row per set: where it is, its key, date, weights, data, size, budget, measured splits, mean SSIM
    over them, monotonicity flags, and the settings in which it differs from the first set listed."""
    header = ["set", "key", "measured", "weights", "data", "px", "budget", "splits", "mean SSIM", "flags",
              "differs from the first row"]
    sets = leakage_sets.describe(table)
    if not sets:
        return "no leakage measured in this table"
    rows = []
    for s in sets:
        meta, values = s["meta"], [v["ssim"] for v in s["splits"].values()]
        date = str(meta.get("date") or "-")[:16].replace("T", " ")
        data = _flat(meta.get("data"), "data")["data"]
        rows.append([s["where"], s["key"] or "-", date, meta.get("weights", "-"), data, meta.get("image_size", "-"),
                     meta.get("budget", "-"), f"{s['measured']} of {s['of']}",
                     f"{sum(values) / len(values):.3f}" if values else "-", len(meta.get("monotonicity") or []),
                     _differences(meta, sets[0]["meta"]) if s is not sets[0] else ""])
    return "\n".join(align_columns(header, rows, left=(0, 1, 2, 3, 4, 6, 10)))


@click.command("leakage-sets")
@click.argument("profile_path", metavar="TABLE", type=click.Path(path_type=Path))
@click.option("--activate", "key", metavar="KEY", help="Make this complete set (its key or a unique prefix) the "
              "one evaluate and train read; the set active before stays in the table's history.")
def leakage_sets_command(profile_path: Path, key: str | None) -> None:
    """The leakage sets a profile table holds (active first, then its history, newest first)."""
    if key is not None:
        made, before = switch_active_set(profile_path, key)
        click.echo(f"{profile_path}: set {made} is active" + ("" if before == made else
                   f" (set {before} moved to leakage_history)" if before else ""))
    click.echo(sets_table(profile_table.read(profile_path)))
