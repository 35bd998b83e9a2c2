"""Where one training iteration's time goes: per phase, per op, and the share that is matrix products.

    .venv/bin/python benchmarks/profile_train.py [--iterations 5] [--preset default] [--num-envs 10]
                                                 [--profiles data/profiles] [--threads 1] [--out FILE.json]

Builds the HC-MAPPO-L trainer of the preset on the bundled tables, runs iteration 1 (it holds the warm
start, timed apart), then profiles ``--iterations`` more with ``torch.profiler`` (CPU). Every op's *self*
time is attributed to the innermost trainer range around it: ``phase:*`` (``hc_mappo_l.Trainer``) and
``rollout:*`` (:func:`optimizer.algos.rollout.collect`). The matrix-product ops (mm, addmm, bmm, baddbmm,
dot/mv) are counted with their FLOPs (the profiler's own estimate from the recorded shapes, 2 per
multiply-add), so each phase shows how much of its time is matmul and at what GFLOPS; the rest is listed
by op. Only the ops' self time is counted: Python between ops (the trainer's own lines) is not, so a
range's share is of op time, which undercounts the Python-heavy rollout. Prints the tables (markdown) and
writes everything to ``--out`` as JSON.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from optimizer.algos.config import TrainConfig, preset  # noqa: E402
from optimizer.algos.hc_mappo_l import Trainer  # noqa: E402
from optimizer.algos.runner import load_catalog  # noqa: E402
from optimizer.config import EnvConfig  # noqa: E402

MATMUL_OPS = {"aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm", "aten::mv", "aten::dot",
              "aten::addmv", "aten::_addmm_activation"}
RANGE_PREFIXES = ("phase:", "rollout:")


def _enclosing_range(event) -> str:
    """Innermost trainer range (``rollout:*`` inside ``phase:rollout``, else ``phase:*``) holding ``event``."""
    parent = event.cpu_parent
    while parent is not None:
        if parent.name.startswith(RANGE_PREFIXES):
            return parent.name
        parent = parent.cpu_parent
    return "other"


def attribute(events) -> dict[str, dict[str, dict[str, float]]]:
    """range → op → {self_us, calls, flops} over the profiled ops (self time: each µs counted once)."""
    table: dict[str, dict[str, dict[str, float]]] = collections.defaultdict(
        lambda: collections.defaultdict(lambda: {"self_us": 0.0, "calls": 0, "flops": 0.0}))
    for event in events:
        if event.name.startswith(RANGE_PREFIXES) or event.name.startswith("ProfilerStep"):
            continue
        cell = table[_enclosing_range(event)][event.name]
        cell["self_us"] += event.self_cpu_time_total
        cell["calls"] += 1
        cell["flops"] += float(getattr(event, "flops", 0) or 0)
    return table


def summarise(table, iterations: int, wall_s: float) -> dict:
    """Per range: ms per iteration, share of the profiled time, matmul share and GFLOPS, top other ops."""
    total_us = sum(c["self_us"] for ops in table.values() for c in ops.values())
    ranges = []
    for name, ops in sorted(table.items(), key=lambda kv: -sum(c["self_us"] for c in kv[1].values())):
        us = sum(c["self_us"] for c in ops.values())
        mm_us = sum(c["self_us"] for op, c in ops.items() if op in MATMUL_OPS)
        mm_flops = sum(c["flops"] for op, c in ops.items() if op in MATMUL_OPS)
        others = sorted(((op, c) for op, c in ops.items() if op not in MATMUL_OPS), key=lambda kv: -kv[1]["self_us"])
        ranges.append({"range": name, "ms_per_iteration": us / 1e3 / iterations, "share": us / total_us,
                       "matmul_share": mm_us / us if us else 0.0,
                       "matmul_gflops": mm_flops / (mm_us * 1e3) if mm_us else 0.0,
                       "matmul_gflop_per_iteration": mm_flops / 1e9 / iterations,
                       "calls_per_iteration": sum(c["calls"] for c in ops.values()) / iterations,
                       "top_other_ops": [{"op": op, "ms_per_iteration": c["self_us"] / 1e3 / iterations,
                                          "calls_per_iteration": c["calls"] / iterations} for op, c in others[:6]]})
    by_op = collections.defaultdict(lambda: {"self_us": 0.0, "calls": 0})
    for ops in table.values():
        for op, c in ops.items():
            by_op[op]["self_us"] += c["self_us"]
            by_op[op]["calls"] += c["calls"]
    mm_us = sum(c["self_us"] for op, c in by_op.items() if op in MATMUL_OPS)
    mm_flops = sum(c["flops"] for ops in table.values() for op, c in ops.items() if op in MATMUL_OPS)
    return {"iterations": iterations, "wall_s_per_iteration": wall_s / iterations,
            "profiled_ms_per_iteration": total_us / 1e3 / iterations,
            "matmul_share": mm_us / total_us, "matmul_gflops": mm_flops / (mm_us * 1e3) if mm_us else 0.0,
            "matmul_gflop_per_iteration": mm_flops / 1e9 / iterations,
            "ops_per_iteration": sum(c["calls"] for c in by_op.values()) / iterations,
            "ranges": ranges,
            "top_ops": [{"op": op, "ms_per_iteration": c["self_us"] / 1e3 / iterations,
                         "calls_per_iteration": c["calls"] / iterations,
                         "share": c["self_us"] / total_us}
                        for op, c in sorted(by_op.items(), key=lambda kv: -kv[1]["self_us"])[:25]]}


def markdown(summary: dict) -> str:
    lines = [f"wall {summary['wall_s_per_iteration']:.3f} s/iteration under the profiler, ops' self time "
             f"{summary['profiled_ms_per_iteration']:.0f} ms, {summary['ops_per_iteration']:.0f} ops/iteration; "
             f"matmul {100 * summary['matmul_share']:.1f} % of op time at {summary['matmul_gflops']:.1f} GFLOPS "
             f"({summary['matmul_gflop_per_iteration']:.2f} GFLOP/iteration)", "",
             "| range | ms/it. | share | ops/it. | matmul share | matmul GFLOPS | largest other ops (ms/it.) |",
             "|---|---|---|---|---|---|---|"]
    for r in summary["ranges"]:
        others = ", ".join(f"{o['op'].removeprefix('aten::')} {o['ms_per_iteration']:.1f}" for o in r["top_other_ops"][:4])
        lines.append(f"| {r['range']} | {r['ms_per_iteration']:.1f} | {100 * r['share']:.1f} % | "
                     f"{r['calls_per_iteration']:.0f} | {100 * r['matmul_share']:.1f} % | {r['matmul_gflops']:.1f} | "
                     f"{others} |")
    lines += ["", "| op | ms/it. | calls/it. | share |", "|---|---|---|---|"]
    for o in summary["top_ops"][:15]:
        lines.append(f"| {o['op']} | {o['ms_per_iteration']:.1f} | {o['calls_per_iteration']:.0f} | "
                     f"{100 * o['share']:.1f} % |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iterations", type=int, default=5)
    parser.add_argument("--preset", default="default")
    parser.add_argument("--num-envs", type=int, default=None)
    parser.add_argument("--profiles", default="data/profiles")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--precision", default="auto", choices=("auto", "bf16", "fp32"))
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    env_cfg = EnvConfig()
    given = {"num_envs": args.num_envs} if args.num_envs else {}
    cfg = TrainConfig(**{**preset(args.preset), **given, "precision": args.precision, "tensorboard": False})
    trainer = Trainer(cfg, env_cfg, load_catalog(args.profiles, env_cfg))
    began = time.perf_counter()
    trainer.train_iteration()
    first_s = time.perf_counter() - began
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True, with_flops=True) as prof:
        began = time.perf_counter()
        for _ in range(args.iterations):
            trainer.train_iteration()
        wall = time.perf_counter() - began
    summary = summarise(attribute(prof.events()), args.iterations, wall)
    summary.update(first_iteration_s=first_s,
                   date=time.strftime("%Y-%m-%d %H:%M:%S"), command=" ".join(sys.argv), load_average=os.getloadavg(),
                   machine=f"{platform.machine()}, {torch.get_num_threads()} torch thread(s), torch {torch.__version__}",
                   preset=args.preset, num_envs=cfg.num_envs, rollout_slots=trainer.slots,
                   precision="bf16" if trainer.bf16 else "fp32")
    print(f"iteration 1 (warm start included): {first_s:.1f} s")
    print(markdown(summary))
    if args.out:
        Path(args.out).write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
