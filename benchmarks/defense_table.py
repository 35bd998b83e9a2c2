"""BENCHMARKS.md's defense tables: every priced option of the given profile tables, seeds averaged.

    .venv/bin/python benchmarks/defense_table.py data/profiles/lenet7.json [more tables]

Per table (its most recently written defense set): one markdown row per (split, defense, strength) with
seeds, bytes sent, device/server MMAC, device/server latency, accuracy and its drop, each attack's SSIM
(95 % CI of the worst one's seeds' mean), the worst and the floor; then two checks over all rows: how
often the defense-aware decoder measured below the unaware one (beyond its CI), and per (split, defense)
whether leakage falls as the knob protects more.
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from inversion.defense import adversarial, builtin  # noqa: E402,F401
from inversion.defense.registry import DEFENSES  # noqa: E402

ATTACKS = ("decoder", "decoder_unaware", "rmle")


def _mean(values):
    kept = [v for v in values if v is not None]
    return float(np.mean(kept)) if kept else None


def _f(x, d=3):
    return "–" if x is None else f"{x:.{d}f}"


def rows_of(path: Path) -> tuple[str, list[str], list[str]]:
    table = json.loads(path.read_text())
    sets = (table.get("defenses") or {}).get("sets") or {}
    if not sets:
        return table["model"], [], []
    key, found = max(sets.items(), key=lambda kv: max((r.get("date", "") for r in kv[1]["records"].values()),
                                                      default=""))
    groups = defaultdict(list)
    for r in found["records"].values():
        groups[(r["split"], r["defense"], r["strength"])].append(r)
    lines = ["| z | defense | strength | seeds | bytes | device / server MMAC | device / server ms | accuracy | drop "
             "| decoder | unaware | rMLE | worst | floor |", "|" + "---|" * 14]
    notes = []
    below = 0
    compared = 0
    for (z, name, strength), recs in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1] != "none", kv[0][1], kv[0][2])):
        a = {k: _mean([r["attacks"].get(k, {}).get("ssim") for r in recs]) for k in ATTACKS}
        for r in recs:
            if "decoder_unaware" in r["attacks"]:
                compared += 1
                aware, unaware = r["attacks"]["decoder"], r["attacks"]["decoder_unaware"]
                below += aware["ssim_ci95"][1] < unaware["ssim"]
        lines.append(f"| {z} | {name} | {'–' if name == 'none' else f'{strength:g}'} | {len(recs)} | {recs[0]['sent_bytes']} "
                     f"| {recs[0]['device_macs'] / 1e6:.2f} / {recs[0]['server_macs'] / 1e6:.2f} "
                     f"| {_mean([r['device_latency_ms'] for r in recs]):.3f} / {_mean([r['server_latency_ms'] for r in recs]):.3f} "
                     f"| {_f(_mean([r['accuracy']['mean'] for r in recs]), 4)} | {_f(_mean([r['accuracy_drop'] for r in recs]), 4)} "
                     f"| {_f(a['decoder'])} | {_f(a['decoder_unaware'])} | {_f(a['rmle'])} "
                     f"| **{_f(_mean([r['leakage']['ssim'] for r in recs]))}** | {_f(_mean([r['floor_ssim'] for r in recs]))} |")
    notes.append(f"defense-aware decoder below the unaware one beyond its 95 % CI: {below} of {compared} options")
    by_knob = defaultdict(list)
    for (z, name, strength), recs in groups.items():
        if name != "none":
            by_knob[(z, name)].append((strength, _mean([r["leakage"]["ssim"] for r in recs])))
    falls, total = 0, 0
    for (z, name), points in by_knob.items():
        if len(points) < 2:
            continue
        order = sorted(points, reverse=DEFENSES.get(name).stronger == "lower")   # weakest first
        total += 1
        falls += all(b[1] <= a[1] + 0.01 for a, b in zip(order, order[1:]))
    notes.append(f"leakage never rises by more than 0.01 as the knob protects more: {falls} of {total} (split, defense)")
    return f"{table['model']} (set {key}, {len(found['records'])} records)", lines, notes


def main() -> None:
    for arg in sys.argv[1:]:
        title, lines, notes = rows_of(Path(arg))
        print(f"#### {title}\n")
        print("\n".join(lines))
        print()
        for n in notes:
            print(f"- {n}")
        print()


if __name__ == "__main__":
    main()
