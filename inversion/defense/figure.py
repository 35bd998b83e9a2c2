"""The price of a defense at a glance: leakage (worst attack's SSIM) against accuracy drop, one panel per
split; one marker shape per defense, its strength written beside it, marker area ∝ the share of the
undefended split's bytes that it sends, the
undefended point as a black star and the no-information floor as a dashed line. Seeds are averaged.
"""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from common.files import atomic_open
from inversion.report import SMOKE_WARNING, pyplot

FIGURE_NAME = "defense.png"
MARKERS = "osD^vP<>Xh"


def by_option(records: dict[str, dict[str, Any]]) -> dict[tuple[int, str, float], list[dict[str, Any]]]:
    """Records grouped over seeds: (split, defense, strength) → the seeds' records."""
    groups: dict[tuple[int, str, float], list[dict[str, Any]]] = defaultdict(list)
    for record in records.values():
        groups[(record["split"], record["defense"], record["strength"])].append(record)
    return dict(sorted(groups.items()))


def write_figure(path: Path, model: str, records: dict[str, dict[str, Any]], floor: float | None,
                 smoke: bool = False) -> Path:
    plt = pyplot()
    from matplotlib.lines import Line2D

    groups = by_option(records)
    splits = sorted({z for z, _, _ in groups})
    defenses = sorted({d for _, d, _ in groups if d != "none"})
    cols = min(3, max(1, len(splits)))
    rows = math.ceil(len(splits) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, 3.8 * rows), squeeze=False)
    for ax, z in zip(axes.flat, splits):
        for (split, name, strength), recs in groups.items():
            if split != z:
                continue
            drop = float(np.mean([r["accuracy_drop"] or 0.0 for r in recs]))
            leak = float(np.mean([r["leakage"]["ssim"] for r in recs]))
            size = 15 + 285 * recs[0]["sent_bytes"] / max(1, recs[0]["clean_bytes"])
            if name == "none":
                ax.scatter([drop], [leak], marker="*", s=160, color="black", zorder=3)
                continue
            i = defenses.index(name)
            ax.scatter([drop], [leak], marker=MARKERS[i % len(MARKERS)], s=size, alpha=0.7, color=f"C{i}")
            ax.annotate(f"{strength:g}", (drop, leak), fontsize=7, xytext=(3, 3), textcoords="offset points")
        if floor is not None:
            ax.axhline(floor, ls="--", color="gray", lw=1)
        ax.set_title(f"split {z}")
        ax.set_xscale("symlog", linthresh=0.01)          # drops under 1 % spread out, large ones compressed
        drops = [float(np.mean([r["accuracy_drop"] or 0.0 for r in recs])) for k, recs in groups.items() if k[0] == z]
        ax.set_xlim(min(0.0, min(drops)) - 0.002, max(0.02, max(drops) * 1.8))
        ax.set_xlabel("accuracy drop (linear below 0.01, log above)")
        ax.set_ylabel("leakage: worst attack SSIM")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(splits):]:
        ax.axis("off")
    handles = [Line2D([], [], marker="*", ls="", color="black", markersize=10, label="no defense")]
    handles += [Line2D([], [], marker=MARKERS[i % len(MARKERS)], ls="", color=f"C{i}", markersize=7, label=name)
                for i, name in enumerate(defenses)]
    fig.legend(handles=handles, loc="lower center", ncol=min(8, len(handles)), fontsize=8, frameon=False,
               bbox_to_anchor=(0.5, -0.04))
    title = (f"{model}: leakage vs accuracy drop per defense, strength beside each marker\n"
             "(marker area ∝ share of the undefended bytes sent; dashed: no-information floor)")
    if smoke:
        title += f"\n{SMOKE_WARNING}"
    fig.suptitle(title, y=1.02, fontsize=10, color="red" if smoke else "black")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(path, "wb") as fh:
        fig.savefig(fh, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path
