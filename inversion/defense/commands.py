"""Click command ``defend``: parse options, call :func:`inversion.defense.run.run_defend`, print the table and
write the figure."""

from __future__ import annotations

import importlib
from pathlib import Path

import click
import numpy as np

from common.devices import DEVICES
from common.errors import UserInputError
from common.files import check_writable
from common.limits import SEED_MAX
from common.precision import PRECISIONS
from common.seeds import parse_seed_list
from common.text import align_columns
from inversion.defense.figure import FIGURE_NAME, by_option, write_figure
from inversion.defense.labelled import LABELLED_DATASETS
from inversion.defense.measure import BUDGETS
from inversion.defense.registry import DEFENSES
from inversion.defense.run import DefendRequest, DefendSummary, run_defend
from inversion.run import parse_layers

ATTACKS = ("decoder", "decoder_unaware", "rmle")


def _mean(values: list[float | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return float(np.mean(kept)) if kept else None


def _cell(x: float | None, digits: int = 3) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def summary_table(summary: DefendSummary) -> str:
    """One row per (split, defense, strength), means over its seeds (n beside them)."""
    header = ["z", "defense", "strength", "seeds", "bytes", "device MMAC", "server MMAC", "accuracy", "drop",
              "decoder", "unaware", "rMLE", "worst"]
    rows = []

    def weakest_first(item):
        (z, name, strength), _ = item
        lower = name != "none" and DEFENSES.get(name).stronger == "lower"
        return z, name != "none", name, -strength if lower else strength

    for (z, name, strength), recs in sorted(by_option(summary.records).items(), key=weakest_first):
        attack = {a: _mean([r["attacks"].get(a, {}).get("ssim") for r in recs]) for a in ATTACKS}
        rows.append([z, name, "-" if name == "none" else f"{strength:g}", len(recs), recs[0]["sent_bytes"],
                     f"{recs[0]['device_macs'] / 1e6:.2f}", f"{recs[0]['server_macs'] / 1e6:.2f}",
                     _cell(_mean([r["accuracy"]["mean"] for r in recs]), 4),
                     _cell(_mean([r["accuracy_drop"] for r in recs]), 4),
                     *(_cell(attack[a]) for a in ATTACKS), _cell(_mean([r["leakage"]["ssim"] for r in recs]))])
    lines = align_columns(header, rows, left=(1,))
    lines.append(f"leakage = SSIM of the attack's reconstruction of held-out images (floor {summary.floor:.3f}: "
                 "the mean auxiliary image); worst = the highest of the attacks; drop = undefended accuracy "
                 f"{summary.reference_accuracy:.4f} minus the option's")
    return "\n".join(lines)


def _defenses(text: str) -> tuple[str, ...]:
    """``all``, or names; ``module:name`` imports your module first (its ``@register_defense`` runs)."""
    items = [p.strip() for p in text.split(",")]
    if not text.strip() or "" in items:
        raise UserInputError(f"--defense {text!r}: expected names such as quantize,noise (or all)")
    names = []
    for item in items:
        module, colon, name = item.rpartition(":")
        if colon:
            try:
                importlib.import_module(module)
            except ImportError as exc:
                raise UserInputError(f"--defense {item!r}: cannot import {module!r} ({exc})") from None
        names += DEFENSES.names() if name == "all" else [name]
    for name in names:
        DEFENSES.get(name)
    return tuple(dict.fromkeys(names))


@click.command()
@click.option("--model", required=True, metavar="NAME|pkg.module:factory", help="Zoo model or a user factory.")
@click.option("--defense", "defense", default="all", show_default=True, metavar="NAMES",
              help=f"Comma-separated defenses or all: {', '.join(DEFENSES.names())}; module:name for one "
                   "your module registers (docs/extending.md).")
@click.option("--strengths", metavar="S1,S2,...",
              help="Strengths of every defense given (default: each defense's own, docs/defenses.md).")
@click.option("--layers", metavar="Z1,Z2,...", help="Split points (default: all of 1..L-1).")
@click.option("--seeds", default="0", show_default=True, metavar="LIST", help="e.g. 0-2: one record per seed.")
@click.option("--budget", type=click.Choice(list(BUDGETS)), default="quick", show_default=True,
              help="Attacker images, decoder and rMLE steps, fine-tuning steps.")
@click.option("--dataset", type=click.Choice(LABELLED_DATASETS), default="fashion-mnist", show_default=True,
              help="Labelled images: fashion-mnist (benchmarks/get_fashion_mnist.sh) or gratings (built in).")
@click.option("--weights", default=None,
              help="Trained state_dict (default: the bundled Fashion-MNIST weights of a LeNet).")
@click.option("--image-size", type=click.IntRange(8, 1024), metavar="PIXELS",
              help="Square image side [the size the bundled weights were trained at, else the model's native].")
@click.option("--profile", "profile_path", type=click.Path(path_type=Path),
              help="Profile table the records go to (default data/profiles/<model>.json).")
@click.option("--out", type=click.Path(path_type=Path), help=f"Folder of {FIGURE_NAME} (default runs/defend/<model>/).")
@click.option("--device", type=click.Choice(DEVICES), default="auto", show_default=True)
@click.option("--precision", type=click.Choice(PRECISIONS), default="auto", show_default=True)
@click.option("--threads", type=int, metavar="N", help="CPU threads for torch (1 when other jobs share the cores).")
@click.option("--redo", is_flag=True, help="Price the options again; the values they replace go to the table's history.")
def defend(model: str, defense: str, strengths: str | None, layers: str | None, seeds: str, budget: str,
           dataset: str, weights: str | None, image_size: int | None, profile_path: Path | None, out: Path | None, device: str,
           precision: str, threads: int | None, redo: bool) -> None:
    """Price defenses per split: bytes, compute, accuracy and leakage against attackers who know them."""
    request = DefendRequest(model=model, defenses=_defenses(defense), strengths=strengths,
                            layers=parse_layers(layers), seeds=tuple(parse_seed_list(seeds, SEED_MAX)),
                            budget=budget, dataset=dataset, weights=weights, image_size=image_size, profile=profile_path, device=device,
                            precision=precision, threads=threads, redo=redo)
    folder = Path(out or Path("runs/defend") / model.replace(":", "."))
    check_writable(folder, "--out", folder=True)
    summary = run_defend(request, log=lambda line: click.echo(line, err=True))
    click.echo(summary_table(summary))
    figure = write_figure(folder / FIGURE_NAME, summary.model, summary.records, summary.floor, smoke=budget == "smoke")
    click.echo(f"profile: {summary.profile_path} (set {summary.settings_key}: {summary.set_size} options in all)   "
               f"figure: {figure}")
