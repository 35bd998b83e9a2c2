"""Click commands ``zoo`` and ``profile``: parse options, call the profiler library, print or write.

    python cli.py zoo
    python cli.py profile vgg19                       readable table (units, then split points)
    python cli.py profile resnet18 --format csv --no-latency
    python cli.py profile --model mypkg.nets:tinynet --input-shape 3,64,64 --out tiny.json
    python cli.py profile --all --out data/profiles/  one JSON per zoo model
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import click
from tqdm import tqdm

from common.devices import DEVICES, resolve_device
from common.errors import UserInputError
from common.files import atomic_open, check_writable
from common.text import align_columns
from common.threads import available_cpus, set_threads
from profiler import zoo as model_zoo
from profiler.build import (ProfileOptions, check_keeps_leakage, existing_table, keep_leakage, profile_model,
                            write_profile)
from profiler.graph import split_model
from profiler.latency import MAX_REPEATS, MAX_WARMUP, LatencyConfig
from profiler.render import format_tables, si
from profiler.weights import NO_WEIGHTS

FORMATS = ("table", "json", "csv")
#: Where ``cli.py leakage`` writes measured leakage by default; the text table shows it from there.
MEASURED_PROFILES = Path("data/profiles")
_SUFFIX_FORMAT = {".json": "json", ".csv": "csv", ".txt": "table"}
_FORMAT_SUFFIX = {fmt: suffix for suffix, fmt in _SUFFIX_FORMAT.items()}


@click.command()
def zoo() -> None:
    """List the model zoo: name, input shape, split units, parameters, description."""
    rows = []
    for name in model_zoo.available():
        spec = model_zoo.ZOO.get(name)
        skeleton = model_zoo.build_on_meta(name)  # no storage, no init: counting units stays instant
        units = split_model(skeleton).num_units
        params = sum(p.numel() for p in skeleton.parameters())
        rows.append([name, "×".join(map(str, spec.input_shape)), units, si(params), spec.description])
    header = ["name", "input", "units", "params", "description"]
    click.echo("\n".join(align_columns(header, rows, left=(0, 1, 4))))


def _command_line(spec: str | None, all_models: bool, input_shape: str | None, weights: str,
                  device: str, no_latency: bool, repeats: int, warmup: int, threads: int | None,
                  out: str | None) -> str:
    """The canonical command recorded in each table's ``generator`` block."""
    args = ["--all"] if all_models else [spec or ""]
    if input_shape:
        args += ["--input-shape", input_shape]
    if weights != NO_WEIGHTS:
        args += ["--weights", weights]
    args += ["--no-latency"] if no_latency else ["--device", device, "--repeats", str(repeats),
                                                "--warmup", str(warmup)]
    if threads is not None and not no_latency:
        args += ["--threads", str(threads)]
    if out:
        args += ["--out", out]
    return "python cli.py profile " + shlex.join(args)


def _resolve_format(fmt: str | None, out: str | None, all_models: bool) -> str:
    """``--format`` if given, else implied by the ``--out`` suffix.

    One model: ``--out`` must end in .json, .csv or .txt (the README's promise), and a ``--format`` that
    contradicts it is refused. ``--all``: ``--out`` is a folder, so a name ending in one of those suffixes
    (that is not a folder already) is refused instead of becoming a folder called ``all.json``.
    """
    if out and all_models:
        if Path(out).suffix.lower() in _SUFFIX_FORMAT and not Path(out).is_dir():
            each = f"<model>{_FORMAT_SUFFIX[fmt or 'json']}"
            raise UserInputError(f"--out {out}: with --all, --out is a folder (one {each} per model); "
                                 "give a folder name such as profiles/")
        return fmt or "json"
    if not out:
        return fmt or "table"
    implied = _SUFFIX_FORMAT.get(Path(out).suffix.lower())
    if implied is None:
        raise UserInputError(f"--out {out}: name the file *.json, *.csv or *.txt (the suffix sets the format)")
    if fmt and fmt != implied:
        raise UserInputError(f"--format {fmt} --out {out}: the suffix {Path(out).suffix} says {implied}; "
                             f"name the file *{_FORMAT_SUFFIX[fmt]} or drop --format")
    return implied


@click.command()
@click.argument("model", required=False)
@click.option("--model", "model_option", metavar="NAME|pkg.module:factory",
              help="Zoo name or a user's model factory (same as the positional MODEL).")
@click.option("--all", "all_models", is_flag=True, help="Profile every zoo model (with --out: a folder).")
@click.option("--input-shape", metavar="C,H,W", help="Input shape of one sample (required for a factory "
              "without an `input_shape` attribute).")
@click.option("--weights", default=NO_WEIGHTS, show_default=True,
              help="none (seeded random init), a torchvision weights name already in the local torch hub cache "
                   "(nothing is downloaded), or a state_dict path.")
@click.option("--device", type=click.Choice(DEVICES), default="auto", show_default=True,
              help="Where latency is measured.")
@click.option("--no-latency", is_flag=True, help="Skip latency measurement (latency fields are null; MACs, bytes and params do not depend on it).")
@click.option("--repeats", type=click.IntRange(min=1, max=MAX_REPEATS), default=LatencyConfig.repeats,
              show_default=True, help=f"Timed runs per unit, 1..{MAX_REPEATS}; the median is kept.")
@click.option("--warmup", type=click.IntRange(min=0, max=MAX_WARMUP), default=LatencyConfig.warmup,
              show_default=True, help=f"Untimed runs per unit before timing, 0..{MAX_WARMUP}.")
@click.option("--format", "fmt", type=click.Choice(FORMATS),
              help="Output format [default: table on screen; with --out from its suffix, which must be "
                   ".json, .csv or .txt; a --format that contradicts the suffix is refused].")
@click.option("--out", type=click.Path(dir_okay=True), help="Write to this file, named *.json, *.csv or *.txt "
              "(with --all: a folder, created if missing, holding one <model>.json per model; a name ending in "
              ".json/.csv/.txt is refused there). JSON over an existing table keeps its leakage when the units "
              "are unchanged.")
@click.option("--threads", type=click.IntRange(min=1), metavar="N",
              help=f"CPU threads for torch while timing, 1..the CPUs this process may use ({available_cpus()} "
                   "here) (default: torch's; recorded in the table).")
def profile(model: str | None, model_option: str | None, all_models: bool, input_shape: str | None,
            weights: str, device: str, no_latency: bool, repeats: int, warmup: int, fmt: str | None,
            out: str | None, threads: int | None) -> None:
    """Cost table of every split point of MODEL (a zoo name or pkg.module:factory).

    Per unit: MACs, FLOPs (= 2 x MACs), other ops, parameters, output bytes, latency; per split z: what
    the device stores and computes, what the server computes, the bytes sent up, and the leakage of
    data/profiles/<model>.json when that table was measured for the same units.
    """
    if model and model_option and model != model_option:
        raise UserInputError(f"two models given ({model!r} and --model {model_option!r}); give one")
    spec = model or model_option
    if all_models == bool(spec):
        raise UserInputError("give one model (a zoo name or --model pkg.module:factory) or --all; "
                             f"the zoo has: {', '.join(model_zoo.available())}")
    if all_models and (input_shape or weights != NO_WEIGHTS):
        raise UserInputError("--input-shape and --weights apply to one model, not to --all")
    shape = model_zoo.parse_input_shape(input_shape) if input_shape else None
    latency = None if no_latency else LatencyConfig(device=device, repeats=repeats, warmup=warmup)
    if latency is not None:
        resolve_device(device)  # fail on --device cuda without a GPU before any work
    if out and all_models and Path(out).is_file():
        raise UserInputError(f"--out {out}: with --all, --out must be a folder")
    if out:
        check_writable(out, folder=all_models)
    fmt = _resolve_format(fmt, out, all_models)
    if threads is not None:
        set_threads(threads)
    options = ProfileOptions(latency=latency, command=_command_line(
        spec, all_models, input_shape, weights, device, no_latency, repeats, warmup, threads, out))
    names = model_zoo.available() if all_models else [spec]
    tables = []
    models_bar = tqdm(names, desc=f"profiling {len(names)} models", unit="model", file=sys.stderr,
                      disable=True if len(names) == 1 else None, leave=False, dynamic_ncols=True)
    for name in models_bar:
        with _StageBar(name, position=0 if len(names) == 1 else 1) as bar:
            bar.stage("building")
            loaded = model_zoo.load_model(name, weights=weights, input_shape=shape)
            tables.append(profile_model(loaded, options, bar))
    models_bar.close()
    sources = _show_measured_leakage(tables) if fmt == "table" else {}
    if out is None:
        click.echo(format_tables(tables, fmt, sources), nl=False)
    elif all_models:
        _write_folder(Path(out), tables, fmt, sources)
    else:
        if fmt == "json":
            write_profile(out, tables[0])
        else:
            _write_text(Path(out), format_tables(tables, fmt, sources))
        click.echo(f"wrote {out}", err=True)


class _StageBar:
    """A tqdm bar on stderr (shown when stderr is a terminal) that :func:`profile_model` drives."""

    def __init__(self, model: str, position: int) -> None:
        self.model = model
        self.bar = tqdm(desc=model, file=sys.stderr, disable=None, leave=False, position=position,
                        dynamic_ncols=True, unit="run", bar_format="{desc} [{elapsed}]")

    def stage(self, name: str, total: int | None = None) -> None:
        self.bar.set_description_str(f"{self.model}: {name}", refresh=False)
        self.bar.bar_format = "{desc} [{elapsed}]" if total is None else None  # no count without a total
        self.bar.reset(total=total)

    def step(self) -> None:
        self.bar.update(1)

    def __enter__(self) -> "_StageBar":
        return self

    def __exit__(self, *exc) -> None:
        self.bar.close()


def _show_measured_leakage(tables: list[dict]) -> dict[str, str]:
    """Fill the text view's leakage column from ``data/profiles/<model>.json`` when that table was measured
    for the same units (:func:`keep_leakage`); returns model → the file it came from."""
    sources = {}
    for table in tables:
        path = MEASURED_PROFILES / f"{table['model']}.json"
        keep_leakage(table, existing_table(path))
        if table.get("leakage_meta"):
            sources[table["model"]] = str(path)
    return sources


def _write_folder(folder: Path, tables: list[dict], fmt: str, sources: dict[str, str]) -> None:
    """``<model>.<json|csv|txt>`` per table; written only after every model was profiled and every target
    checked, so a refused file leaves the whole folder as it was."""
    suffix = _FORMAT_SUFFIX[fmt]
    if fmt == "json":
        for table in tables:
            check_keeps_leakage(folder / f"{table['model']}{suffix}", table)
    for table in tables:
        path = folder / f"{table['model']}{suffix}"
        if fmt == "json":
            write_profile(path, table)
        else:
            _write_text(path, format_tables([table], fmt, sources))
        click.echo(f"wrote {path}", err=True)


def _write_text(path: Path, text: str) -> None:
    with atomic_open(path) as fh:
        fh.write(text)
