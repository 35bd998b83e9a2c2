"""Benchmark: `profile --all` (with and without latency) against fvcore's own FlopCountAnalysis.

Two comparisons, medians of ``--runs`` runs:

1. analysis only, in one process, per zoo model (model built once): splitpriv's ``profile_model``
   without latency (graph split + per-unit counting + table) against
   ``FlopCountAnalysis(model, x).total()``, run alternately. Target: ratio <= 2.
2. end to end, fresh processes: ``python cli.py profile --all --no-latency`` and
   ``python cli.py profile --all`` (default latency settings) against a process that builds the same
   nine models and runs ``FlopCountAnalysis(model, x).total()`` on each.

Writes the figures into BENCHMARKS.md's "## Profiler" section (machine, date, command).

    .venv/bin/python benchmarks/bench_profiler.py --runs 3
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from profiler.build import ProfileOptions, profile_model  # noqa: E402
from profiler.graph import split_model  # noqa: E402
from profiler.zoo import available, load_model  # noqa: E402

with warnings.catch_warnings():
    warnings.simplefilter("ignore", FutureWarning)
    from fvcore.nn import FlopCountAnalysis  # noqa: E402


def fvcore_total(model: torch.nn.Module, x: torch.Tensor) -> int:
    with torch.no_grad():
        return FlopCountAnalysis(model, (x,)).unsupported_ops_warnings(False).total()


def analysis_only(runs: int) -> list[tuple[str, float, float, float]]:
    """Per model: (name, median fvcore s, median splitpriv s, median fx-split s), alternating, after a warm-up."""
    rows = []
    options = ProfileOptions(latency=None, command="benchmark")
    for name in available():
        loaded = load_model(name)
        x = loaded.example_input()
        fvcore_total(loaded.model, x), profile_model(loaded, options)  # warm-up (first-run allocations)
        ours, theirs, splits = [], [], []
        for _ in range(runs):
            start = time.perf_counter()
            split_model(loaded.model)
            splits.append(time.perf_counter() - start)
            start = time.perf_counter()
            fvcore_total(loaded.model, x)
            theirs.append(time.perf_counter() - start)
            start = time.perf_counter()
            profile_model(loaded, options)
            ours.append(time.perf_counter() - start)
        rows.append((name, statistics.median(theirs), statistics.median(ours), statistics.median(splits)))
        print(f"{name:9s} fvcore {rows[-1][1]:.3f} s  splitpriv {rows[-1][2]:.3f} s", file=sys.stderr)
    return rows


def fvcore_all() -> None:
    """What the end-to-end fvcore baseline process runs: build each zoo model, count it."""
    for name in available():
        loaded = load_model(name)
        fvcore_total(loaded.model, loaded.example_input())


def _timed(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def end_to_end(runs: int) -> dict[str, float]:
    python = sys.executable
    with tempfile.TemporaryDirectory() as tmp:
        commands = {
            "fvcore FlopCountAnalysis, 9 models": [python, __file__, "--fvcore-all"],
            "profile --all --no-latency": [python, "cli.py", "profile", "--all", "--no-latency", "--out", tmp],
            "profile --all (latency, defaults)": [python, "cli.py", "profile", "--all", "--out", tmp],
        }
        medians = {}
        for label, cmd in commands.items():
            times = [_timed(cmd) for _ in range(runs)]
            medians[label] = statistics.median(times)
            print(f"{label}: {medians[label]:.1f} s (runs {', '.join(f'{t:.1f}' for t in times)})", file=sys.stderr)
    return medians


def markdown(rows: list[tuple[str, float, float, float]], e2e: dict[str, float], runs: int,
             load: tuple[float, float]) -> str:
    fv_sum, ours_sum, split_sum = (sum(r[i] for r in rows) for i in (1, 2, 3))
    lines = [
        f"Measured {dt.date.today().isoformat()} by `benchmarks/bench_profiler.py --runs {runs}` on "
        f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__} with "
        f"{torch.get_num_threads()} threads, Python {platform.python_version()}; median of {runs} runs. "
        f"1-minute load average {load[0]:.1f} at the start, {load[1]:.1f} at the end: the machine is shared, "
        "absolute times swing; read the ratios.",
        "",
        "Analysis only (model built once, one process, runs alternated): splitpriv `profile_model` without "
        "latency (fx split + per-unit fvcore counting + cut tensors + table) vs fvcore "
        "`FlopCountAnalysis(model, x).total()`.",
        "",
        "Where the extra time goes: the torch.fx split (symbolic trace + one GraphModule per unit), timed "
        "on its own in the last column; counting is ONE fvcore trace of the chain of units (forward hooks "
        "keep the cut tensors), so it costs about what fvcore's own analysis costs.",
        "",
        "| model | fvcore s | splitpriv s | ratio | of which fx split s |",
        "|---|---:|---:|---:|---:|",
    ]
    lines += [f"| {n} | {f:.3f} | {o:.3f} | {o / f:.2f} | {sp:.3f} |" for n, f, o, sp in rows]
    lines += [f"| **all nine** | {fv_sum:.2f} | {ours_sum:.2f} | **{ours_sum / fv_sum:.2f}** | {split_sum:.2f} |", ""]
    if e2e:
        base = e2e["fvcore FlopCountAnalysis, 9 models"]
        lines += ["End to end, fresh process each (imports, building the nine models, writing JSON):", "",
                  "| command | median s | vs fvcore process |", "|---|---:|---:|"]
        lines += [f"| {label} | {s:.1f} | {s / base:.2f} |" for label, s in e2e.items()]
        lines += ["", "With latency, each unit runs warm-up + repeats times (defaults 3 + 20) on top of the "
                  "analysis: about 23 forward passes per model, which dominate and swing most with load.", ""]
    return "\n".join(lines)


def write_section(text: str, path: Path = ROOT / "BENCHMARKS.md") -> None:
    """Replace the body of the '## Profiler' section, leaving every other section untouched."""
    content = path.read_text()
    head, marker, rest = content.partition("## Profiler\n")
    if not marker:
        raise SystemExit(f"{path}: no '## Profiler' heading")
    next_heading = rest.find("\n## ")
    tail = rest[next_heading + 1:] if next_heading >= 0 else ""
    path.write_text(f"{head}{marker}\n{text}\n{tail}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-end-to-end", action="store_true", help="only the in-process analysis comparison")
    parser.add_argument("--fvcore-all", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--no-write", action="store_true", help="print, do not edit BENCHMARKS.md")
    args = parser.parse_args()
    if args.fvcore_all:
        return fvcore_all()
    load_start = os.getloadavg()[0]
    rows = analysis_only(args.runs)
    e2e = {} if args.no_end_to_end else end_to_end(args.runs)
    text = markdown(rows, e2e, args.runs, (load_start, os.getloadavg()[0]))
    print(text)
    if not args.no_write:
        write_section(text)


if __name__ == "__main__":
    main()
