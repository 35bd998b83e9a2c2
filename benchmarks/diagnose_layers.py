"""Which learned layer holds a trained run back? Swap each for its heuristic and compare.

    python benchmarks/diagnose_layers.py results/train_1000_t64/runs/hc-mappo-l-s0 [more runs] \
        [--episodes 5] [--seed 777] [--out runs/layers.json]

For each run directory the greedy learned policies are evaluated on the same fresh episodes with
(a) all three layers learned, (b) equal-share allocation instead of the learned one, (c) popularity
deployment instead of the learned one, (d) both heuristics around the learned users, and (e) the
heuristics with Random users as a floor. Besides the usual metrics it reports *coverage*: the share of
requests whose service is deployed on at least one server when the request is made; a request for a
service hosted nowhere can only be served by running the whole model on the device.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common.errors import UserInputError  # noqa: E402
from optimizer import baselines  # noqa: E402
from optimizer.algos.runner import load_catalog  # noqa: E402
from optimizer.env import EdgeEnv  # noqa: E402
from optimizer.env.metrics import SLOT_METRIC_NAMES as METRICS  # noqa: E402
from optimizer.algos.trained import load_policies  # noqa: E402


@torch.no_grad()
def evaluate(env: EdgeEnv, deployment, user, allocation, seed: int) -> dict[str, float]:
    """One round of B copy-episodes (the slot of ``optimizer.evaluate.run_slot``, with the coverage
    read between deployment and users): slot-averaged metrics and coverage, averaged over copies."""
    env.reset(seed=seed)
    for policy in (deployment, user, allocation):
        if hasattr(policy, "reset"):
            policy.reset(seed)
    sums = {m: torch.zeros(env.num_envs) for m in (*METRICS, "coverage")}
    counts = {m: torch.zeros(env.num_envs) for m in sums}
    for _ in range(env.cfg.slots_per_episode):
        if env.deployment_due:
            env.deploy(deployment.deploy(env, env.deployment_observation()))
        hosted_anywhere = env.deployment.any(1).gather(1, env.request_service).float().mean(-1)
        server, split = user.act(env, env.user_observation())
        compute, bandwidth = allocation.allocate(env, env.allocation_observation(server, split))
        res = env.step(server, split, compute, bandwidth)
        for name, value in {**res.metrics, "coverage": hosted_anywhere}.items():
            if name in sums:
                sums[name] += value.nan_to_num(0.0)
                counts[name] += value.isfinite()
    return {m: float((sums[m] / counts[m]).mean()) for m in sums}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+")
    parser.add_argument("--profiles", default="data/profiles")
    parser.add_argument("--episodes", type=int, default=5)
    parser.add_argument("--seed", type=int, default=777)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=None, help="JSON file for the results")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    results = {}
    for run in args.runs:
        dep, usr, alloc, env_cfg = load_policies(run)
        env = EdgeEnv(env_cfg, load_catalog(args.profiles, env_cfg), num_envs=args.episodes, seed=0)
        popularity, equal, sqrt = baselines.PopularityDeployment(), baselines.EqualShare(), baselines.SqrtShare()
        edge = baselines.EdgeOnly()
        combos = {"learned deployment, users, allocation": (dep, usr, alloc),
                  "learned deployment, users + equal share": (dep, usr, equal),
                  "learned deployment, users + square-root share": (dep, usr, sqrt),
                  "learned deployment + Edge-Only users + learned allocation": (dep, edge, alloc),
                  "popularity + learned users, allocation": (popularity, usr, alloc),
                  "popularity + learned users + equal share": (popularity, usr, equal),
                  "popularity + random users + equal share": (popularity, baselines.RandomUser(0), equal)}
        results[run] = {name: evaluate(env, *layers, seed=args.seed) for name, layers in combos.items()}
        print(f"\n{run} ({args.episodes} episodes, seed {args.seed})")
        print("| layers | delay (s) | success | coverage | user cost | cost per served user |")
        print("|---|---|---|---|---|---|")
        for name, r in results[run].items():
            print(f"| {name} | {r['delay_s']:.2f} | {r['success_rate']:.3f} | {r['coverage']:.3f} | "
                  f"{r['user_cost']:.1f} | {r['served_user_cost']:.1f} |")
    if args.out:
        Path(args.out).write_text(json.dumps({"episodes": args.episodes, "seed": args.seed,
                                              "results": results}, indent=1))


if __name__ == "__main__":
    try:
        main()
    except UserInputError as exc:                 # bad input: one line, exit code 2, no traceback
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
