"""Figures a person would rather look at than a table (matplotlib, Agg backend, PNG).

* ``reconstructions.png``: the first held-out originals on top, one row of reconstructions per split
  point below, each with its SSIM;
* ``ssim_vs_split.png``: mean SSIM per split point with its 95 % CI band, and the no-information floor.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

GRID_NAME = "reconstructions.png"
PLOT_NAME = "ssim_vs_split.png"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def reconstruction_grid(path: Path, originals: np.ndarray, rows: dict[int, np.ndarray],
                        ssims: dict[int, list[float]], title: str) -> Path:
    """``originals`` K × H × W × 3; ``rows[z]`` the reconstructions of split z; ``ssims[z]`` per image."""
    plt = _pyplot()
    k = len(originals)
    splits = sorted(rows)
    fig, axes = plt.subplots(len(splits) + 1, k, figsize=(1.3 * k, 1.45 * (len(splits) + 1)), squeeze=False)
    for j in range(k):
        axes[0, j].imshow(originals[j])
        axes[0, j].set_title("original", fontsize=7)
        for i, z in enumerate(splits, start=1):
            axes[i, j].imshow(np.clip(rows[z][j], 0, 1))
            axes[i, j].set_title(f"z={z} SSIM {ssims[z][j]:.2f}", fontsize=6, y=-0.22)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(title, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def ssim_plot(path: Path, num_units: int, entries: dict[int, dict[str, Any]], floor: dict[str, Any] | None,
              title: str) -> Path:
    """SSIM vs split point z with the 95 % CI band, the paper's boundary points and the floor band."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    zs = sorted(entries)
    if zs:
        mean = np.array([entries[z]["ssim"] for z in zs])
        lo = np.array([entries[z]["ssim_ci95"][0] for z in zs])
        hi = np.array([entries[z]["ssim_ci95"][1] for z in zs])
        ax.fill_between(zs, lo, hi, alpha=0.25, label="95 % CI")
        ax.plot(zs, mean, "o-", label="measured SSIM")
    ax.plot([0, num_units], [1.0, 0.0], "s", color="grey", label="convention (z=0: 1, z=L: 0)")
    if floor:
        f = floor["ssim"]
        ax.axhline(f["mean"], color="red", linestyle="--", label="no-information floor")
        ax.axhspan(f["ci95"][0], f["ci95"][1], color="red", alpha=0.1)
    ax.set_xlabel("split point z (units on the device)")
    ax.set_ylabel("SSIM(I_o, I_r | z)")
    ax.set_xlim(-0.5, num_units + 0.5)
    ax.set_ylim(0, 1.05)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
