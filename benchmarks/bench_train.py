"""Training benchmark: throughput, and end-of-training metrics of every algorithm over several seeds.

    python benchmarks/bench_train.py --iterations 20 --seeds 0,1,2 [--synthetic-profiles] \
        [--algos hc-mappo-l,h-mappo,...] [--runs hc-mappo-l:0,h-mappo:1] [--no-baselines] \
        [--num-envs 4] [--preset default|paper] [--eval-episodes 10] [--out results/train]

For each (algorithm, seed): train with ``optimizer.algos.runner.train_run`` (run directory kept
under OUT/runs, resumed if it holds a checkpoint), record env slots/s during rollouts and wall time
per iteration (medians over the iterations), then evaluate the trained policies on fresh evaluation
seeds with ``optimizer.evaluate.run_episodes``: every layer greedy (the row's metrics), and once more with
users and deployment sampling their trained stochastic policies from seeded generators (``sampled_*``); the
heuristic baselines (Local-Only, Edge-Only, Random, Greedy, Lagrangian) run on the same evaluation seeds. Each result is one file OUT/rows/NAME-sSEED.json, and
OUT/summary.json, OUT/summary.csv and OUT/convergence.png are rebuilt from all the rows there, so
several processes (one per core, disjoint ``--runs``) can fill one OUT. Every figure states the
iterations actually run; nothing is extrapolated.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common.errors import UserInputError  # noqa: E402
from optimizer.algos.ablations import ALGORITHMS  # noqa: E402
from optimizer.algos.config import TrainConfig, preset  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402
from optimizer.algos.runner import SYNTHETIC, load_catalog, train_run  # noqa: E402
from optimizer.config import EnvConfig  # noqa: E402
from optimizer.env import EdgeEnv  # noqa: E402
from optimizer.env.metrics import METRIC_NAMES as METRICS  # noqa: E402
from optimizer.evaluate import evaluate_baseline, run_episodes, summarise  # noqa: E402
from optimizer.algos.trained import load_policies  # noqa: E402

EVAL_SEED = 777          # evaluation episodes: never used in training (training seeds start at 5e8)
BASELINES = ("local-only", "edge-only", "random", "greedy", "lagrangian")


def _mean_ci(values: list[float]) -> tuple[float, float]:
    """Mean and half-width of its 95 % interval over seeds: ``optimizer.evaluate.summarise`` (Student's t,
    4.30 s.d./√3 for 3 seeds; the normal 1.96 would understate it 2.2×)."""
    summary = summarise(np.asarray(values, dtype=float))
    return summary.mean, summary.ci95


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--algos", default=",".join(ALGORITHMS))
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--runs", default=None, metavar="ALGO:SEED,...",
                        help="train only these (algorithm, seed) pairs instead of --algos × --seeds")
    parser.add_argument("--no-baselines", action="store_true", help="skip the heuristic baselines")
    parser.add_argument("--baselines-only", action="store_true", help="train nothing, run the baselines")
    parser.add_argument("--summarise", action="store_true",
                        help="only rebuild OUT/summary.* and OUT/convergence.png from OUT/rows")
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--num-envs", type=int, default=None, help="env copies (default: the preset's)")
    parser.add_argument("--profiles", default="data/profiles")
    parser.add_argument("--synthetic-profiles", action="store_true")
    parser.add_argument("--eval-episodes", type=int, default=10)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="auto", choices=("auto", "bf16", "fp32"))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default="results/train")
    parser.add_argument("--throughput-iterations", type=int, default=6,
                        help="iterations timed per --throughput entry (the first is not counted)")
    parser.add_argument("--preset", default="default", help="TrainConfig preset (default | paper)")
    parser.add_argument("--throughput", default=None, metavar="B1,B2xT2,...",
                        help="only measure HC-MAPPO-L speed for these num_envs (BxT: B copies of T-slot "
                             "rollouts; B alone keeps the preset's rollout_slots)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.throughput:
        throughput(args)
        return

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    profiles = SYNTHETIC if args.synthetic_profiles else args.profiles
    env_cfg = EnvConfig()
    if args.summarise:
        _write(out, meta_of(args, profiles, [], time.strftime("%Y-%m-%d %H:%M:%S")), env_cfg)
        return
    catalog = load_catalog(profiles, env_cfg)
    seeds = [int(s) for s in args.seeds.split(",")]
    algos = args.algos.split(",")
    jobs = parse_runs(args.runs) if args.runs else [(a, sd) for a in algos for sd in seeds]
    if args.baselines_only:
        jobs = []
    unknown = sorted({a for a, _ in jobs} - set(ALGORITHMS))
    if unknown:
        raise UserInputError(f"unknown algorithm {', '.join(unknown)} (allowed: {', '.join(ALGORITHMS)})")
    started = time.strftime("%Y-%m-%d %H:%M:%S")
    rows_dir = out / "rows"
    rows_dir.mkdir(exist_ok=True)
    for algo, seed in jobs:
        given = {"num_envs": args.num_envs} if args.num_envs is not None else {}
        cfg = TrainConfig(**{**preset(args.preset), **given, "algo": algo, "iterations": args.iterations,
                             "seed": seed, "device": args.device, "precision": args.precision,
                             "tensorboard": False})
        run_dir = out / "runs" / f"{algo}-s{seed}"
        result = train_run(cfg, env_cfg, profiles, run_dir, resume=(run_dir / "checkpoint.pt").exists(),
                           progress=True)
        history = result.history
        dep, usr, alloc, _ = load_policies(run_dir, device=args.device)
        env = EdgeEnv(env_cfg, catalog, num_envs=min(args.eval_episodes, 5), device=args.device, seed=0)
        evaluation = run_episodes(env, dep, usr, alloc, args.eval_episodes, seed=EVAL_SEED + seed)
        s_dep, s_usr, _, _ = load_policies(run_dir, device=args.device, sample_users=True, sample_deployment=True)
        sampled = run_episodes(env, s_dep, s_usr, alloc, args.eval_episodes, seed=EVAL_SEED + seed)
        row = {"policy": algo, "seed": seed, "iterations": result.iterations,
               "env_slots_per_s": statistics.median(h["env_slots_per_s"] for h in history),
               "iteration_s": statistics.median(h["iteration_s"] for h in history),
               "final_lambda": history[-1]["lambda"]}
        row.update({m: float(evaluation.samples[m].mean()) for m in METRICS})
        row.update({f"sampled_{m}": float(sampled.samples[m].mean()) for m in METRICS})
        row.update({f"train_{m}": history[-1].get(m, float("nan")) for m in METRICS})
        _save_row(rows_dir, row)
        _write(out, meta_of(args, profiles, seeds, started), env_cfg)
    for name in () if args.no_baselines else BASELINES:
        for seed in seeds:
            env = EdgeEnv(env_cfg, catalog, num_envs=min(args.eval_episodes, 5), device=args.device, seed=0)
            evaluation = evaluate_baseline(name, env, args.eval_episodes, seed=EVAL_SEED + seed)
            row = {"policy": name, "seed": seed, "iterations": 0}
            row.update({m: float(evaluation.samples[m].mean()) for m in METRICS})
            row["final_lambda"] = evaluation.extra.get("lambda", float("nan"))
            _save_row(rows_dir, row)
    _write(out, meta_of(args, profiles, seeds, started), env_cfg)


def parse_runs(text: str) -> list[tuple[str, int]]:
    """``hc-mappo-l:0,h-mappo:1`` → [("hc-mappo-l", 0), ("h-mappo", 1)]; anything else is refused."""
    jobs = []
    for item in text.split(","):
        algo, _, seed = item.partition(":")
        if not seed.isdigit():
            raise UserInputError(f"--runs {item!r}: expected ALGO:SEED, e.g. hc-mappo-l:0")
        jobs.append((algo, int(seed)))
    return jobs


def _save_row(rows_dir: Path, row: dict) -> None:
    row["command"] = " ".join(sys.argv)
    (rows_dir / f"{row['policy']}-s{row['seed']}.json").write_text(json.dumps(row))
    print(json.dumps(row), flush=True)


def throughput(args) -> None:
    """Env slots/s during rollouts, wall time per phase and per iteration (medians of iterations 2…N;
    the first includes warm-up) and FLOPs of one iteration (torch FlopCounterMode: 2 per multiply-add)
    of HC-MAPPO-L at a preset, per num_envs."""
    from optimizer.algos.hc_mappo_l import Trainer

    profiles = SYNTHETIC if args.synthetic_profiles else args.profiles
    env_cfg = EnvConfig()
    catalog = load_catalog(profiles, env_cfg)
    results = []
    for entry in args.throughput.split(","):
        num_envs, _, slots = entry.partition("x")
        shape = {"num_envs": int(num_envs)} | ({"rollout_slots": int(slots)} if slots else {})
        trainer = Trainer(TrainConfig(**{**preset(args.preset), **shape, "device": args.device,
                                         "precision": args.precision, "tensorboard": False}), env_cfg, catalog)
        stats = [trainer.train_iteration() for _ in range(args.throughput_iterations)][1:]
        with FlopCounterMode(display=False) as flops:
            trainer.train_iteration()
        row = {"num_envs": trainer.cfg.num_envs, "rollout_slots": trainer.slots,
               "slots_per_iteration": trainer.cfg.num_envs * trainer.slots,
               "precision": "bf16" if trainer.bf16 else "fp32", "threads": torch.get_num_threads()}
        for key in ("env_slots_per_s", "rollout_s", "update_s", "user_update_s", "alloc_update_s",
                    "dep_update_s", "iteration_s"):
            row[key] = statistics.median(s.get(key, 0.0) for s in stats)
        row["gflop_per_iteration"] = flops.get_total_flops() / 1e9
        row["minutes_per_1000_iterations"] = row["iteration_s"] * 1000 / 60
        results.append(row)
        print(json.dumps(row), flush=True)
    meta = {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "command": " ".join(sys.argv), "profiles": profiles,
            "load_average": os.getloadavg(),
            "machine": f"{platform.machine()}, {torch.get_num_threads()} torch threads, {args.device}"}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    name = (f"throughput-{args.preset}-{results[0]['precision']}-{results[0]['threads']}t.json" if results
            else "throughput.json")
    (out / name).write_text(json.dumps({"meta": meta, "rows": results}, indent=1))


def meta_of(args, profiles: str, seeds: list[int], started: str) -> dict:
    return {"started": started, "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
            "command": " ".join(sys.argv), "profiles": profiles, "synthetic": profiles == SYNTHETIC,
            "machine": f"{platform.machine()}, {torch.get_num_threads()} torch threads, {args.device}",
            "iterations": args.iterations, "seeds": seeds,
            "num_envs": args.num_envs or preset(args.preset).get("num_envs", TrainConfig.num_envs),
            "rollout_slots": preset(args.preset).get("rollout_slots", TrainConfig.rollout_slots),
            "eval_episodes": args.eval_episodes, "eval_seed": EVAL_SEED, "env": "EnvConfig() defaults",
            "preset": args.preset}


def _write(out: Path, meta: dict, env_cfg: EnvConfig) -> None:
    """summary.json / summary.csv / convergence.png from every row and run under OUT so far."""
    rows = [json.loads(p.read_text()) for p in sorted((out / "rows").glob("*.json"))]
    order = list(ALGORITHMS) + list(BASELINES)
    rows.sort(key=lambda r: (order.index(r["policy"]) if r["policy"] in order else len(order), r["seed"]))
    curves: dict[str, list[list[dict]]] = {}
    for row in rows:
        metrics_csv = out / "runs" / f"{row['policy']}-s{row['seed']}" / "metrics.csv"
        if row["policy"] in ALGORITHMS and metrics_csv.exists():
            with open(metrics_csv, newline="") as fh:
                history = [{k: float(v) for k, v in r.items() if v != ""} for r in csv.DictReader(fh)]
            curves.setdefault(row["policy"], []).append(history)
    summary = {}
    for policy in dict.fromkeys(r["policy"] for r in rows):
        mine = [r for r in rows if r["policy"] == policy]
        # a metric added after a row was written (charged_cost, 2026-12-03) is summarised over the rows that have it
        summary[policy] = {m: _mean_ci([r[m] for r in mine if m in r]) if any(m in r for r in mine)
                           else (math.nan, math.nan) for m in METRICS}
        summary[policy]["runs"] = len(mine)
        summary[policy]["seeds"] = [r["seed"] for r in mine]
        if policy in ALGORITHMS:
            summary[policy]["iterations"] = sorted({r["iterations"] for r in mine})
            summary[policy]["env_slots_per_s"] = _mean_ci([r["env_slots_per_s"] for r in mine])
            summary[policy]["iteration_s"] = _mean_ci([r["iteration_s"] for r in mine])
    learned = [r for r in rows if r["policy"] in ALGORITHMS]     # what the rows hold, whoever wrote them
    meta = {**meta, "row_commands": sorted({r["command"] for r in rows if "command" in r}),
            "seeds": sorted({r["seed"] for r in rows}), "iterations": sorted({r["iterations"] for r in learned})}
    (out / "summary.json").write_text(json.dumps({"meta": meta, "rows": rows, "summary": summary}, indent=1))
    with open(out / "summary.csv", "w", newline="") as fh:
        keys = sorted({k for r in rows for k in r}, key=lambda k: (k != "policy", k != "seed", k))
        writer = csv.DictWriter(fh, keys)
        writer.writeheader()
        writer.writerows(rows)
    if curves:
        _plot(curves, out / "convergence.png", env_cfg.cost.delay_limit_s, meta)
    print(_table(summary, env_cfg.cost.delay_limit_s), flush=True)


def _table(summary: dict, limit: float) -> str:
    columns = ("delay_s", "delay_p95_s", "timeout_rate", "energy_j", "privacy_cost", "split_depth", "user_cost")
    head = ("| policy | runs | delay (s) | p95 (s) | time-out | energy (J) | privacy | z/L | user cost | "
            "delay ≤ τ̄ |")
    lines = [head, "|" + "---|" * 10]

    def cell(value: tuple[float, float]) -> str:
        mean, ci = value
        return f"{mean:.3g} ± {ci:.2g}" if math.isfinite(ci) else f"{mean:.3g} ± n/a"

    for name, s in summary.items():
        cells = [cell(s[m]) for m in columns]
        lines.append(f"| {name} | {s['runs']} | " + " | ".join(cells)
                     + f" | {'yes' if s['delay_s'][0] <= limit else 'no'} |")
    return "\n".join(lines)


SMOOTH = 10   # iterations in the moving average of the convergence curves


def _smooth(y: np.ndarray) -> np.ndarray:
    """Trailing moving average (shorter windows at the start, so the curve keeps its length)."""
    cumulative = np.nancumsum(y)
    window = np.minimum(np.arange(1, len(y) + 1), SMOOTH)
    shifted = np.concatenate([np.zeros(1), cumulative])[np.arange(1, len(y) + 1) - window]
    return (cumulative - shifted) / window


def _plot(curves: dict, path: Path, limit: float, meta: dict) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = (("delay_s", "mean delay (s)"), ("user_cost", "user cost (eq. 12), all users"),
              ("served_user_cost", "user cost per served user"), ("success_rate", "success rate"),
              ("energy_j", "energy (J)"), ("privacy_cost", "privacy cost"), ("lambda", "λ"))
    fig, axes = plt.subplots(2, 4, figsize=(18, 7))
    for ax, (key, label) in zip(axes.flat, panels):
        for algo, histories in curves.items():
            n = min(len(h) for h in histories)
            values = np.array([[row.get(key, np.nan) for row in h[:n]] for h in histories])
            x = np.arange(1, n + 1)
            ax.plot(x, _smooth(values.mean(0)), label=algo)
            ax.fill_between(x, _smooth(values.min(0)), _smooth(values.max(0)), alpha=0.15)
        if key == "delay_s":
            ax.axhline(limit, color="red", linestyle="--", label="τ̄")
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("iteration (num_envs × rollout slots of experience)")
    axes.flat[-1].axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.suptitle(f"training rollouts (stochastic policies), mean and range over seeds {meta['seeds']}, "
                 f"moving average over {SMOOTH} iterations; "
                 f"profiles: {meta['profiles']}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


if __name__ == "__main__":
    try:
        main()
    except UserInputError as exc:                 # bad input: one line, exit code 2, no traceback
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
