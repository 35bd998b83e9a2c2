"""Defense options of a profile table as extra choices of the user's split action (``env.defenses``).

``python cli.py defend`` stores, per (split z, defense, strength, seed), what the device sends and computes,
the test-accuracy drop and the worst attack's SSIM (:mod:`inversion.defense.table`). Here each option,
averaged over its seeds, becomes one more column of the catalog beside the model's split points 0..L_i:
the column runs split z with that option's D^U(z) (the split's device parameters), Ω^U, Ω^E (the
defense's MACs included), D^up (the bytes it sends), Lea (its worst attack) and Δacc.

The set read is the one priced on the model the table's leakage describes (same weights label and image
size as ``leakage_meta``), the most recently written if several qualify (a later recipe supersedes, the
earlier set stays in the table); a table without one offers no options. The ``none`` rows are the undefended split itself and are not repeated.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class DefenseColumn:
    """One option of one model, averaged over its seeds (per image: bytes, work; SSIM in [0, 1])."""

    split: int
    defense: str
    strength: float
    device_work: float
    server_work: float
    uplink_bytes: float
    leakage: float
    accuracy_drop: float      # clamped at 0: an option is never paid for being more accurate than none
    seeds: int

    @property
    def label(self) -> str:
        return f"z{self.split}:{self.defense}@{self.strength:g}"


def _matching_set(table: dict[str, Any]) -> dict[str, Any] | None:
    block = table.get("defenses") or {}
    leak = table.get("leakage_meta") or {}
    fits = [s for s in (block.get("sets") or {}).values()
            if s.get("meta", {}).get("weights") == leak.get("weights")
            and s.get("meta", {}).get("image_size") == leak.get("image_size")]
    latest = lambda s: max((r.get("date", "") for r in s.get("records", {}).values()), default="")  # noqa: E731
    return max(fits, key=latest, default=None)


def defense_columns(table: dict[str, Any], compute_unit: str) -> list[DefenseColumn]:
    """The table's options, ordered by split, defense and strength (empty when it priced none)."""
    found = _matching_set(table)
    if found is None:
        return []
    per_work = 2.0 if compute_unit == "flops" else 1.0          # records count MACs
    last = len(table["splits"]) - 1
    groups: dict[tuple[int, str, float], list[dict[str, Any]]] = defaultdict(list)
    for record in found.get("records", {}).values():
        if record["defense"] != "none" and 0 < record["split"] < last:
            groups[(record["split"], record["defense"], float(record["strength"]))].append(record)
    columns = []
    for (z, name, strength), recs in sorted(groups.items()):
        mean = lambda values: sum(values) / len(values)  # noqa: E731
        columns.append(DefenseColumn(
            split=z, defense=name, strength=strength,
            device_work=per_work * mean([r["device_macs"] for r in recs]),
            server_work=per_work * mean([r["server_macs"] for r in recs]),
            uplink_bytes=mean([r["sent_bytes"] for r in recs]),
            leakage=min(1.0, max(0.0, mean([r["leakage"]["ssim"] for r in recs]))),
            accuracy_drop=max(0.0, mean([r["accuracy_drop"] or 0.0 for r in recs])),
            seeds=len(recs)))
    return columns
