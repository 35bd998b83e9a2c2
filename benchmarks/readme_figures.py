"""The README's SSIM-vs-split figure, drawn from a bundled table's active leakage set (nothing measured).

    python benchmarks/readme_figures.py [--model resnet18] [--out docs/figures/resnet18_ssim_vs_split.png]

Uses the same plot as ``cli.py leakage`` (``inversion.report.ssim_plot``), so the figure shows exactly the
numbers `evaluate` and `train` read from ``data/profiles/<model>.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from common.errors import UserInputError
from inversion import report
from inversion.leakage_sets import measured_splits
from profiler import table as schema

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    path = ROOT / "data" / "profiles" / f"{args.model}.json"
    try:
        table = schema.read(path, require_leakage=True)
    except UserInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    meta = table["leakage_meta"]
    settings = {key: meta[key] for key in ("weights", "image_size", "budget", "seed")}
    settings["data"] = meta["data"].get("name", "")
    title = report.title_of(args.model, settings, meta["data"])
    out = args.out or ROOT / "docs" / "figures" / f"{args.model}_ssim_vs_split.png"
    print(report.ssim_plot(out, len(table["splits"]) - 1, measured_splits(table), meta["floor"], title,
                           smoke=meta["budget"] == "smoke"))

if __name__ == "__main__":
    main()
