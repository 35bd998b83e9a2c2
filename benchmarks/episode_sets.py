"""How hard is an evaluation set? Trained policies and heuristics on the evaluation episodes of
``bench_train.py`` and on episodes drawn like the training ones.

    .venv/bin/python benchmarks/episode_sets.py results/train_1000_t64 [--episodes 10] [--threads 1] [--algos A,B]

For every run directory ``OUT/runs/ALGO-sSEED`` (and, once per seed, Edge-Only, Greedy and the
Lagrangian heuristic with the λ it calibrated in OUT/rows) it evaluates on two sets of 10 fresh 200-slot
episodes: the evaluation set of that seed (``EVAL_SEED + seed``, the one in OUT/summary) and a set drawn
from the training seed stream but never trained on (episode 1,100 of that seed; 1000 iterations of
10 copies × 20 slots play episodes 0–99, of 4 copies × 50 slots 0–249). Users and deployment sample their trained stochastic policies
(``sampled_*`` in the summary). Prints one line per policy and writes OUT/episode_sets.json. Both sets
come from the same distribution: the gap between them is the spread of 10-episode means, which the CI
over 3 seeds in the summary does not show.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_train import EVAL_SEED  # noqa: E402
from common.errors import UserInputError  # noqa: E402
from common.files import atomic_open, check_writable  # noqa: E402
from optimizer import baselines  # noqa: E402
from optimizer.algos.hc_mappo_l import TRAIN_SEED_BASE  # noqa: E402
from optimizer.algos.runner import load_catalog  # noqa: E402
from optimizer.algos.trained import load_policies  # noqa: E402
from optimizer.config import EnvConfig, from_dict  # noqa: E402
from optimizer.env import EdgeEnv  # noqa: E402
from optimizer.evaluate import run_episodes  # noqa: E402

UNSEEN_TRAINING_EPISODE = 1_100
METRICS = ("delay_s", "user_cost", "timeout_rate", "split_depth")
HEURISTICS = ("edge-only", "greedy", "lagrangian")


def _heuristic(out: Path, name: str, seed: int):
    """(deployment, user, allocation) of a baseline as bench_train.py evaluates it; the Lagrangian's λ is
    the one it calibrated for this seed (OUT/rows/lagrangian-sSEED.json)."""
    lam = 0.0
    if baselines.baseline_spec("user", name).calibrated:
        row = out / "rows" / f"{name}-s{seed}.json"
        if not row.is_file():
            raise UserInputError(f"{row}: missing; run bench_train.py --baselines-only for seed {seed} first")
        lam = json.loads(row.read_text())["final_lambda"]
    allocation = baselines.baseline_spec("user", name).allocation
    return (baselines.make_baseline("deployment", "popularity"), baselines.make_baseline("user", name, lam, seed),
            baselines.make_baseline("allocation", allocation))


def episode_sets(seed: int) -> dict[str, int]:
    return {"evaluation": EVAL_SEED + seed, "training-like": TRAIN_SEED_BASE + seed * 1_000_000 + UNSEEN_TRAINING_EPISODE}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", help="a bench_train.py output folder (holds runs/ and profiles)")
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--algos", default="", help="comma-separated algorithms to include (default: every run)")
    args = parser.parse_args()
    wanted = {a for a in args.algos.split(",") if a}
    out = Path(args.out)
    try:
        if args.episodes < 1 or args.threads < 1:
            raise UserInputError("--episodes and --threads must be >= 1")
        if not (out / "runs").is_dir():
            raise UserInputError(f"{out}: not a bench_train.py output folder (no runs/ in it)")
        check_writable(out / "episode_sets.json")
        torch.set_num_threads(args.threads)
        _evaluate(out, args.episodes, wanted)
    except UserInputError as exc:
        print(f"episode_sets: {exc}", file=sys.stderr)
        return 2
    return 0


def _evaluate(out: Path, episodes: int, wanted: set[str]) -> None:
    records = []
    for run_dir in sorted((out / "runs").iterdir()):
        config = json.loads((run_dir / "config.json").read_text())
        env_cfg = from_dict(EnvConfig, config["env"])
        catalog = load_catalog(config["profiles"], env_cfg)
        seed = config["train"]["seed"]
        if wanted and config["train"]["algo"] not in wanted:
            continue
        players = {config["train"]["algo"]: load_policies(run_dir, sample_users=True, sample_deployment=True)[:3]}
        if not any(r["seed"] == seed and r["policy"] in HEURISTICS for r in records):
            players.update({name: _heuristic(out, name, seed) for name in HEURISTICS})
        for name, (dep, usr, alloc) in players.items():
            row = {"policy": name, "seed": seed}
            for label, episode_seed in episode_sets(seed).items():
                env = EdgeEnv(env_cfg, catalog, num_envs=min(episodes, 5), seed=0)
                result = run_episodes(env, dep, usr, alloc, episodes, episode_seed)
                row[label] = {m: float(result.samples[m].mean()) for m in METRICS}
            records.append(row)
            ev, tr = row["evaluation"], row["training-like"]
            print(f"{name:18s} seed {seed}: evaluation set {ev['delay_s']:.2f} s, cost {ev['user_cost']:.1f}; "
                  f"training-like set {tr['delay_s']:.2f} s, cost {tr['user_cost']:.1f}", flush=True)
    with atomic_open(out / "episode_sets.json") as fh:
        json.dump({"episodes": episodes, "sets": {"evaluation": f"{EVAL_SEED} + seed",
                                                        "training-like": f"{TRAIN_SEED_BASE} + seed·1e6 + "
                                                                         f"{UNSEEN_TRAINING_EPISODE}"},
                   "rows": records}, fh, indent=2)


if __name__ == "__main__":
    sys.exit(main())
