"""Run logging: metrics CSV, TensorBoard scalars and training-curve PNGs of a run directory."""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Sequence

from common.files import atomic_open

# Columns of metrics.csv, in order (every iteration writes all of them).
CSV_COLUMNS = ("iteration", "env_slots", "wall_s", "lambda", "delay_s", "delay_median_s", "delay_p95_s",
               "deadline_miss_rate", "success_rate", "timeout_rate", "cache_miss_rate", "user_cost", "energy_j",
               "privacy_cost", "served_user_cost", "charged_cost", "split_depth", "user_reward", "dep_reward", "alloc_reward",
               "user_loss", "user_value_loss", "user_entropy", "user_approx_kl", "user_clip_frac",
               "alloc_loss", "alloc_value_loss", "alloc_entropy", "alloc_clip_frac", "dep_loss", "dep_value_loss",
               "dep_entropy", "dep_approx_kl", "dep_clip_frac", "rollout_s", "update_s", "user_update_s", "alloc_update_s", "dep_update_s",
               "iteration_s", "env_slots_per_s")

# (panel title, [(column, label)], draw the τ̄ line)
CURVES = (
    ("Mean delay per user (s)", [("delay_s", "delay")], True),
    ("User cost, eq. 12", [("user_cost", "all users"), ("served_user_cost", "per served user"),
                           ("charged_cost", "failures charged C^fail")], False),
    ("Energy (J) and privacy cost", [("energy_j", "energy"), ("privacy_cost", "privacy")], False),
    ("Service success rate", [("success_rate", "success")], False),
    ("Lagrange multiplier λ", [("lambda", "λ")], False),
    ("Mean user reward, eq. 25", [("user_reward", "reward")], False),
)


class MetricsCSV:
    """Append-only CSV of per-iteration metrics; :meth:`rewrite` restores it from a checkpoint."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)

    def rewrite(self, rows: Sequence[dict]) -> None:
        with atomic_open(self.path, newline="") as fh:
            writer = csv.DictWriter(fh, CSV_COLUMNS, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)

    def append(self, row: dict) -> None:
        new = not self.path.exists()
        with open(self.path, "a", newline="") as fh:
            writer = csv.DictWriter(fh, CSV_COLUMNS, extrasaction="ignore")
            if new:
                writer.writeheader()
            writer.writerow(row)


class TensorBoardLog:
    """Scalars per iteration under ``run_dir/tb``; a no-op when disabled."""

    def __init__(self, run_dir: Path, enabled: bool) -> None:
        self.writer = None
        if enabled:
            from torch.utils.tensorboard import SummaryWriter
            self.writer = SummaryWriter(str(run_dir / "tb"))

    def log(self, row: dict) -> None:
        if self.writer is None:
            return
        step = int(row["iteration"])
        for key, value in row.items():
            if key != "iteration" and isinstance(value, (int, float)):
                self.writer.add_scalar(key, value, step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def plot_curves(rows: Sequence[dict], out_dir: str | os.PathLike, delay_limit_s: float,
                title: str = "") -> Path | None:
    """Training curves (metric vs. iteration) as one PNG grid ``curves.png``; returns its path."""
    if not rows:
        return None
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    x = [r["iteration"] for r in rows]
    fig, axes = plt.subplots(2, 3, figsize=(13, 6.5))
    for ax, (heading, series, limit) in zip(axes.flat, CURVES):
        for column, label in series:
            ax.plot(x, [r.get(column, float("nan")) for r in rows], label=label)
        if limit:
            ax.axhline(delay_limit_s, color="red", linestyle="--", label="τ̄")
        ax.set_xlabel("iteration")
        ax.set_title(heading, fontsize=9)
        ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path = out_dir / "curves.png"
    with atomic_open(path, "wb") as fh:
        fig.savefig(fh, format="png", dpi=90)
    plt.close(fig)
    return path
