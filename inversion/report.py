"""Figures a person would rather look at than a table (matplotlib, Agg backend, PNG).

* ``reconstructions.png``: held-out originals on top, one row of reconstructions per split point below;
  each row is labelled with its split, unit and the shape of the transmitted feature, each image with
  its SSIM;
* ``ssim_vs_split.png``: mean SSIM per split point with its 95 % CI band (lines join consecutive
  measured splits only), the paper's boundary points and the no-information floor band; a hollow marker
  where the decoder was still improving (:mod:`profiler.leakage_flags`), an upward triangle where the
  value is a data-limited lower bound, each named in the legend.

Titles name the weights as "random-init" or the weights used; a smoke-budget run carries a red
"numbers meaningless" banner.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from common.files import atomic_open
from inversion import store
from profiler import leakage_flags

GRID_NAME = "reconstructions.png"
PLOT_NAME = "ssim_vs_split.png"
SMOKE_WARNING = "SMOKE BUDGET: wiring check only, numbers meaningless"


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def weights_label(weights: str) -> str:
    return "random-init" if weights in ("none", "", None) else f"weights {Path(str(weights)).name}"


def title_of(model: str, settings: dict[str, Any], data: dict[str, Any]) -> str:
    return (f"{model} ({weights_label(settings['weights'])}), {data.get('name', settings['data'])} "
            f"{settings['image_size']} px, {settings['budget']} budget, seed {settings['seed']}")


def _runs(zs: list[int]) -> list[list[int]]:
    """Consecutive runs of split points: [1, 2, 4, 5] → [[1, 2], [4, 5]]."""
    runs: list[list[int]] = []
    for z in zs:
        if runs and z == runs[-1][-1] + 1:
            runs[-1].append(z)
        else:
            runs.append([z])
    return runs


def _show(ax, image: np.ndarray) -> None:
    image = np.clip(image, 0, 1)
    if image.ndim == 3 and image.shape[-1] == 1:
        ax.imshow(image[..., 0], cmap="gray", vmin=0, vmax=1)
    else:
        ax.imshow(image)


def reconstruction_grid(path: Path, originals: np.ndarray, rows: dict[int, np.ndarray],
                        ssims: dict[int, list[float]], labels: dict[int, str], title: str,
                        smoke: bool = False) -> Path:
    """``originals`` K × H × W × C; ``rows[z]`` reconstructions of split z; ``labels[z]`` its row label."""
    plt = pyplot()
    k = len(originals)
    splits = sorted(rows)
    n_rows = len(splits) + 1
    fig, axes = plt.subplots(n_rows, k, figsize=(1.25 * k + 1.6, 1.35 * n_rows + 0.7), squeeze=False)
    for j in range(k):
        _show(axes[0, j], originals[j])
        for i, z in enumerate(splits, start=1):
            _show(axes[i, j], rows[z][j])
            axes[i, j].set_xlabel(f"SSIM {ssims[z][j]:.2f}", fontsize=6, labelpad=1)
    axes[0, 0].set_ylabel("original", fontsize=7)
    for i, z in enumerate(splits, start=1):
        axes[i, 0].set_ylabel(labels.get(z, f"z={z}"), fontsize=6)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(title, fontsize=8)
    if smoke:
        fig.text(0.5, 0.005, SMOKE_WARNING, color="red", ha="center", va="bottom", fontsize=8, weight="bold")
    fig.tight_layout(rect=(0, 0.03 if smoke else 0, 1, 0.97))
    with atomic_open(path, "wb") as fh:           # an interrupt never leaves half a PNG
        fig.savefig(fh, format="png", dpi=110)
    plt.close(fig)
    return path


def ssim_plot(path: Path, num_units: int, entries: dict[int, dict[str, Any]], floor: dict[str, Any] | None,
              title: str, smoke: bool = False) -> Path:
    """SSIM vs split point z with the 95 % CI band, the paper's boundary points and the floor band."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.8, 3.9))
    for n, run in enumerate(_runs(sorted(entries))):
        mean = np.array([entries[z]["ssim"] for z in run])
        lo = np.array([entries[z]["ssim_ci95"][0] for z in run])
        hi = np.array([entries[z]["ssim_ci95"][1] for z in run])
        ax.fill_between(run, lo, hi, alpha=0.25, color="C0", label="95 % CI" if n == 0 else None)
        ax.plot(run, mean, "o-", color="C0", label="measured SSIM" if n == 0 else None)
    improving, limited = flagged_splits(entries)
    if improving:
        ax.plot(improving, [entries[z]["ssim"] for z in improving], "o", color="C0", markerfacecolor="white",
                markersize=7, label=f"decoder still improving (gain > {leakage_flags.CONVERGENCE_GAIN_LIMIT})")
    if limited:
        ax.plot(limited, [entries[z]["ssim"] for z in limited], "^", color="C1", markersize=8,
                label="lower bound: vector wider than the fitting pairs")
    ax.plot([0, num_units], [1.0, 0.0], "s", color="grey", label="convention (z=0: 1, z=L: 0)")
    if floor:
        f = floor["ssim"]
        ax.axhspan(f["ci95"][0], f["ci95"][1], color="red", alpha=0.15,
                   label=f"no-information floor {f['mean']:.2f} (95 % CI)")
        ax.axhline(f["mean"], color="red", linestyle="--", linewidth=0.8)
    ax.set_xlabel("split point z (units on the device)")
    ax.set_ylabel("SSIM(I_o, I_r | z)")
    ax.set_xlim(-0.5, num_units + 0.5)
    ax.set_ylim(0, 1.05)
    ax.set_title(title, fontsize=8)
    ax.legend(fontsize=7, loc="upper right")
    if smoke:
        ax.text(0.5, 0.5, SMOKE_WARNING, transform=ax.transAxes, color="red", ha="center", va="center",
                fontsize=10, weight="bold", alpha=0.6, rotation=12)
    fig.tight_layout()
    with atomic_open(path, "wb") as fh:           # an interrupt never leaves half a PNG
        fig.savefig(fh, format="png", dpi=110)
    plt.close(fig)
    return path


def flagged_splits(entries: dict[int, dict[str, Any]]) -> tuple[list[int], list[int]]:
    """(splits whose decoder was still improving, splits whose value is a data-limited lower bound)."""
    zs = sorted(entries)
    return ([z for z in zs if leakage_flags.still_improving(entries[z])],
            [z for z in zs if leakage_flags.data_limited(entries[z])])


def write_figures(out_dir: Path, model: str, num_units: int, results: Any) -> list[Path]:
    """Reconstruction grid and SSIM-vs-split plot from a results object and its saved samples."""
    s = results.settings
    title = title_of(model, s, results.data or {})
    smoke = s["budget"] == "smoke"
    figures = [ssim_plot(out_dir / PLOT_NAME, num_units, results.splits, results.floor, title, smoke)]
    originals = store.load_samples(out_dir, "originals")
    rows = {z: store.load_samples(out_dir, f"split_{z:03d}") for z in results.splits}
    rows = {z: r for z, r in rows.items() if r is not None and "sample_ssim" in results.splits[z]}
    if originals is not None and rows:
        ssims = {z: results.splits[z]["sample_ssim"] for z in rows}
        labels = {z: f"z={z} {results.splits[z].get('unit', '')}\n"
                     f"{'x'.join(str(d) for d in results.splits[z].get('feature_shape', []))}" for z in rows}
        figures.append(reconstruction_grid(out_dir / GRID_NAME, originals, rows, ssims, labels, title, smoke))
    return figures
