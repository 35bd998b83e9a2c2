"""Click command ``leakage``: parse options, call :func:`inversion.run.run_leakage`, print the summary."""

from __future__ import annotations

from pathlib import Path

import click

from common.devices import DEVICES
from common.errors import UserInputError
from common.limits import SEED_MAX
from common.precision import PRECISIONS
from common.text import align_columns
from inversion.attack import LOSSES
from inversion.config import BUDGETS
from inversion.consistency import describe
from inversion.data import DATASETS
from inversion.plan import IMAGE_SIZE_MAX, RULE_MAX_PX
from inversion.run import LeakageRequest, RunSummary, parse_layers, run_leakage
from profiler import leakage_flags
from profiler.weights import NO_WEIGHTS



def _fmt(x: float | None, digits: int = 3) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def summary_table(summary: RunSummary) -> str:
    """Raw SSIM with CI, PSNR, the floor; a min–max normalised column for reading only (never stored).
    SSIM cells carry :mod:`profiler.leakage_flags`' marks (``†`` still improving, ``≥`` a lower bound)."""
    entries = summary.results.splits
    zs = sorted(entries)
    values = [entries[z]["ssim"] for z in zs]
    lo, hi = (min(values), max(values)) if values else (0.0, 0.0)
    header = ["z", "unit", "feature", "SSIM", "95% CI", "PSNR dB", "min-max norm.*", "gain 2nd half**"]
    rows = [[0, "(raw input)", "", "1.000", "convention", "-", "", ""]]
    for z in zs:
        e = entries[z]
        norm = (e["ssim"] - lo) / (hi - lo) if hi > lo else 1.0
        rows.append([z, (e.get("unit") or summary.unit_names[z - 1])[:22],
                     "x".join(str(d) for d in e.get("feature_shape", [])), leakage_flags.ssim_cell(e),
                     f"[{_fmt(e['ssim_ci95'][0])}, {_fmt(e['ssim_ci95'][1])}]", _fmt(e["psnr"], 2), f"{norm:.3f}",
                     _fmt((e.get("convergence") or {}).get("gain_last_half"), 3)])
    rows.append([summary.num_units, "(nothing sent)", "", "0.000", "convention", "-", "", ""])
    lines = align_columns(header, rows, left=(1, 2, 4))
    floor = summary.results.floor
    if floor:
        f = floor["ssim"]
        lines.append(f"floor (mean auxiliary image): SSIM {f['mean']:.3f} [{f['ci95'][0]:.3f}, {f['ci95'][1]:.3f}], "
                     f"PSNR {_fmt(floor['psnr']['mean'], 2)} dB")
    lines.append("* min-max normalised over the measured splits, for reading only; the profile stores raw SSIM")
    lines.append("** held-out auxiliary SSIM at the end of decoder training minus half-way (near 0: converged)")
    lines += leakage_flags.footnotes((z, entries[z]) for z in zs)
    for v in summary.results.monotonicity:
        lines.append(f"warning: {describe(v)}")
    return "\n".join(lines)


@click.command()
@click.option("--model", required=True, metavar="NAME|pkg.module:factory", help="Zoo model or a user factory.")
@click.option("--layers", metavar="Z1,Z2,...", help="Split points to measure (default: all of 1..L-1).")
@click.option("--budget", type=click.Choice(list(BUDGETS)), default=None,
              help="Images and decoder training steps (docs/leakage.md); default: the one the "
                   "table's active set was measured with, else quick.")
@click.option("--device", type=click.Choice(DEVICES), default="auto", show_default=True,
              help="Where the victim and decoder run (auto: CUDA if available).")
@click.option("--precision", type=click.Choice(PRECISIONS), default="auto", show_default=True,
              help="auto: bf16 autocast where the hardware supports it.")
@click.option("--seed", type=click.IntRange(0, SEED_MAX), default=0, show_default=True,
              help="Seed of image crops, train/test split and decoder init (recorded).")
@click.option("--weights", default=NO_WEIGHTS, show_default=True,
              help="none (seeded random init), a cached torchvision weights name, or a state_dict path.")
@click.option("--image-size", type=click.IntRange(8, IMAGE_SIZE_MAX), metavar="PIXELS",
              help=f"Square image side, 8 to {IMAGE_SIZE_MAX} (and the images and one split's features must fit "
                   f"in half the RAM); default: the size the table's active set was measured at, else the "
                   f"model's native size capped at {RULE_MAX_PX}.")
@click.option("--data", "data_dir", type=click.Path(), help="Folder of your own images (instead of the embedded set).")
@click.option("--dataset", type=click.Choice(list(DATASETS)), default=None,
              help="embedded scikit-image photographs (default), cifar10 (under data/cifar10) or fashion-mnist "
                   "(gray; benchmarks/get_fashion_mnist.sh installs it).")
@click.option("--loss", type=click.Choice(LOSSES), default="mse+ssim", show_default=True,
              help="Decoder training loss.")
@click.option("--profile", "profile_path", type=click.Path(path_type=Path),
              help="Profile table to update; it must exist (python cli.py profile) and only its leakage is "
                   "written (default data/profiles/<model>.json for zoo models, "
                   "profiles/<pkg.module.factory>.json for a user's model).")
@click.option("--out", type=click.Path(path_type=Path), help="Results folder (default runs/leakage/<model>/).")
@click.option("--force", is_flag=True, help="Make this run's settings the table's active set now, even before "
              "every split is measured (the earlier set stays in leakage_history).")
@click.option("--redo", is_flag=True, help="Measure the requested splits again even if already measured "
              "with the same settings.")
@click.option("--threads", type=int, metavar="N",
              help="CPU threads for torch (default: torch's; 1 is faster when other jobs share the cores).")
def leakage(model: str, layers: str | None, budget: str | None, device: str, precision: str, seed: int, weights: str,
            image_size: int | None, data_dir: str | None, dataset: str | None, loss: str,
            profile_path: Path | None, out: Path | None, force: bool, redo: bool, threads: int | None) -> None:
    """Privacy leakage Lea(z) = SSIM(I_o, I_r | z) of every split point, by decoder inversion (eq. 3)."""
    if data_dir and dataset:
        raise UserInputError("give either --data DIR or --dataset, not both")
    request = LeakageRequest(model=model, layers=parse_layers(layers), budget=budget, device=device,
                             precision=precision, seed=seed, weights=weights, image_size=image_size,
                             data=data_dir or dataset or "embedded", loss=loss, profile=profile_path, out=out,
                             force=force, redo=redo, threads=threads)
    summary = run_leakage(request, log=lambda line: click.echo(line, err=True))
    click.echo(summary_table(summary))
    click.echo(f"profile: {summary.profile_path} ({summary.table_set} set)   results: {summary.out_dir}   "
               f"figures: {', '.join(str(p) for p in summary.figures)}")
