"""Runs per core-hour of a group of R seeds in one process (``train --seeds``) against R = 1.

    python benchmarks/bench_group.py --groups 1,2,4,8 --iterations 6 [--device cuda] [--out results/bench_group]

For each R: build the group (R trainers on the bundled tables, the default preset), train ``--iterations``
iterations of every run, and time them; the first iteration of each run is left out of the rate (allocator
and cache warm-up). Reported per R: seconds per iteration of one run, runs per core-hour relative to R = 1
(= t(1) / t(R) per run-iteration; above 1 means the group is cheaper per run), and the set-up time. One thread; nothing is
extrapolated beyond the iterations run. Writes OUT/DEVICE.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from optimizer.algos.config import TrainConfig, preset  # noqa: E402
from optimizer.algos.runner import train_group  # noqa: E402
from optimizer.config import EnvConfig  # noqa: E402


def measure(group: int, args: argparse.Namespace) -> dict[str, float]:
    cfgs = [TrainConfig(**{**preset("default"), "seed": s, "iterations": args.iterations, "device": args.device,
                           "tensorboard": False, "checkpoint_every": 10**6}) for s in range(group)]
    began = time.perf_counter()
    stamps: list[float] = []
    with tempfile.TemporaryDirectory() as folder:
        results = train_group(cfgs, EnvConfig(), args.profiles, [Path(folder) / f"seed-{s}" for s in range(group)],
                              progress=False, on_iteration=lambda seed, row: stamps.append(time.perf_counter()))
    total = time.perf_counter() - began
    per_run = [row["iteration_s"] for r in results for row in r.history[1:]]
    setup = stamps[0] - began - results[0].history[0]["iteration_s"]
    return {"runs": group, "iteration_s_per_run": statistics.median(per_run), "setup_s": setup, "total_s": total}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--groups", default="1,2,4,8")
    parser.add_argument("--iterations", type=int, default=6)
    parser.add_argument("--profiles", default="data/profiles")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", default="results/bench_group")
    args = parser.parse_args()
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    meta = {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "machine": platform.processor() or platform.machine(),
            "cpus": torch.get_num_threads(), "device": args.device, "iterations": args.iterations,
            "torch": torch.__version__}
    rows = []
    for group in (int(g) for g in args.groups.split(",")):
        row = measure(group, args)
        base = rows[0]["iteration_s_per_run"] if rows else row["iteration_s_per_run"]
        row["runs_per_core_hour_vs_r1"] = base / row["iteration_s_per_run"]
        rows.append(row)
        print(f"R = {group:3d}: {row['iteration_s_per_run']:.3f} s per iteration of one run, "
              f"{row['runs_per_core_hour_vs_r1']:.2f}× the runs per core-hour of R = 1, set-up {row['setup_s']:.1f} s",
              flush=True)
        # after every R, so a run stopped by a time limit keeps what it measured
        (out / f"{args.device}.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1) + "\n")

if __name__ == "__main__":
    main()
