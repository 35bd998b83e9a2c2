"""Training, calibration and evaluation episode streams: one distribution? (issue 23 item 2)

    .venv/bin/python benchmarks/episode_streams.py [--episodes 40] [--policies lagrangian,greedy] [--out FILE]

A fixed heuristic (the Lagrangian at λ = 1, popularity deployment, best allocation; Greedy) plays ``--episodes``
200-slot episodes of each stream (optimizer/sweep/streams.py) on the bundled tables and the default env; prints
each metric's mean ± s.e. per stream and the largest gap between streams in combined standard errors.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from optimizer import baselines  # noqa: E402
from optimizer.algos.runner import load_catalog  # noqa: E402
from optimizer.config import EnvConfig  # noqa: E402
from optimizer.env import EdgeEnv  # noqa: E402
from optimizer.sweep.spec import EVAL_SEED  # noqa: E402
from optimizer.sweep.streams import largest_gap, stream_means  # noqa: E402

METRICS = ("delay_s", "user_cost", "charged_cost", "timeout_rate", "split_depth", "success_rate")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--episodes", type=int, default=40)
    parser.add_argument("--policies", default="lagrangian,greedy")
    parser.add_argument("--profiles", default="data/profiles")
    parser.add_argument("--out", default="results/episode_streams.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    cfg = EnvConfig()
    env = EdgeEnv(cfg, load_catalog(args.profiles, cfg), num_envs=5, seed=0)
    report = {}
    for name in args.policies.split(","):
        user = baselines.make_baseline("user", name, 1.0) if name == "lagrangian" else baselines.make_baseline("user", name)
        allocation = baselines.make_baseline("allocation", baselines.baseline_spec("user", name).allocation)
        means = stream_means(env, baselines.make_baseline("deployment", "popularity"), user, allocation,
                             args.episodes, EVAL_SEED, 0, METRICS)
        report[name] = {"means": [m.__dict__ for m in means], "largest_gap_se": {m: largest_gap(means, m) for m in METRICS}}
        for metric in METRICS:
            cells = "  ".join(f"{m.stream} {m.mean:.4g} ± {m.se:.2g}" for m in means if m.metric == metric)
            print(f"{name:10s} {metric:13s} {cells}   largest gap {largest_gap(means, metric):.2f} s.e.", flush=True)
    Path(args.out).write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
