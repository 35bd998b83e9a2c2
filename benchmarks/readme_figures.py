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

from inversion import report

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    path = ROOT / "data" / "profiles" / f"{args.model}.json"
    if not path.is_file():
        print(f"error: no bundled table {path.relative_to(ROOT)}", file=sys.stderr)
        sys.exit(2)
    table = json.loads(path.read_text())
    meta, splits = table["leakage_meta"], table["splits"]
    num_units = len(splits) - 1
    entries = {z: splits[z]["leakage"] for z in range(1, num_units) if splits[z]["leakage"]}
    settings = {key: meta[key] for key in ("weights", "image_size", "budget", "seed")}
    settings["data"] = meta["data"].get("name", "")
    title = report.title_of(args.model, settings, meta["data"])
    out = args.out or ROOT / "docs" / "figures" / f"{args.model}_ssim_vs_split.png"
    print(report.ssim_plot(out, num_units, entries, meta["floor"], title))


if __name__ == "__main__":
    main()
