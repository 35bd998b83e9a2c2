"""What a sweep costs beyond its trials, and what a second worker buys (issue 23, item 8).

    .venv/bin/python benchmarks/bench_sweep_workers.py [--trials 4] [--iterations 20] [--workers 1,2]
                                                       [--profiles data/profiles] [--out FILE.json]

Writes a spec of ``--trials`` learner trials (HC-MAPPO-L, one seed, τ̄ moved so that every trial is its
own setting; no heuristics, no room, 2 evaluation episodes) and runs it with ``python cli.py sweep`` once
per worker count, each into a fresh folder, timing the whole command. Reports per worker count the wall
time, the sum of the trials' own times (``elapsed_s`` in their outcome files) and

- the engine's overhead: wall × workers / Σ trial time − 1 (process start, imports, pool, CSV), ideally 0;
- the speed-up: wall with 1 worker / wall with W workers (≥ 1.8 asked for 2 workers on 2 cores).

Run it with nothing else on the machine: the speed-up is a statement about free cores.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def spec(trials: int, iterations: int) -> dict:
    return {"name": "workers", "axes": [{"name": "tau_bar_s", "keys": ["env.cost.delay_limit_s"],
                                         "values": [2.0 + 0.25 * i for i in range(trials)]}],
            "algorithms": ["hc-mappo-l"], "heuristics": [], "room": False, "seeds": [0],
            "iterations": iterations, "eval_episodes": 2}


def run(spec_path: Path, out: Path, workers: int, profiles: str) -> dict:
    began = time.perf_counter()
    done = subprocess.run([sys.executable, str(ROOT / "cli.py"), "sweep", str(spec_path), "--out", str(out),
                           "--workers", str(workers), "--profiles", profiles, "--quiet"],
                          capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - began
    if done.returncode != 0:
        raise SystemExit(f"sweep with {workers} workers failed: {done.stderr.strip().splitlines()[-1:]}")
    trial_s = sum(json.loads(p.read_text())["elapsed_s"] for p in (out / "trials").rglob("*.json"))
    return {"workers": workers, "wall_s": wall, "trials_s": trial_s, "overhead": wall * workers / trial_s - 1}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=4)
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--profiles", default="data/profiles")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        spec_path = Path(tmp) / "workers.yaml"
        spec_path.write_text(json.dumps(spec(args.trials, args.iterations)))       # JSON is YAML
        for workers in [int(w) for w in args.workers.split(",")]:
            rows.append(run(spec_path, Path(tmp) / f"w{workers}", workers, args.profiles))
            print(json.dumps(rows[-1]), flush=True)
    for row in rows:
        row["speedup"] = rows[0]["wall_s"] / row["wall_s"]
    result = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": platform.processor()
              or platform.machine(), "cpus": os.cpu_count(), "load_before": load_before,
              "trials": args.trials, "iterations": args.iterations, "rows": rows}
    print(json.dumps(result, indent=1))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
