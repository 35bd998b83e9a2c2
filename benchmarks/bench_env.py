"""User-steps per second of EdgeEnv alone under random valid actions (goals: BENCHMARKS.md, Environment).

    .venv/bin/python benchmarks/bench_env.py [--profiles data/profiles] [--slots 200] [--repeats 3]

One user-step = one user served for one slot. Each timed slot does what a rollout needs from the
environment: deployment every ΔT slots (random scores, greedy fill under C7), the user masks, random
(server, split) drawn within the masks, random allocation shares, ``env.step``. Three rates: time inside
``env.step`` only; the whole slot; the whole slot plus the eq. 16–18 observations learned policies read. Falls back to SYNTHETIC profile tables (clearly
printed) when the profile folder has no tables. Prints a Markdown table; the median of the repeats.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from pathlib import Path

import torch

from optimizer.baselines import greedy_fill
from optimizer.config import EnvConfig
from optimizer.env import EdgeEnv, ServiceCatalog


def run(env: EdgeEnv, slots: int, with_obs: bool, gen: torch.Generator) -> tuple[float, float]:
    """(seconds for ``slots`` slots of random valid actions, seconds spent inside ``env.step``)."""
    B, J, K, I, Z = env.dims
    env.reset(seed=0)
    in_step = 0.0
    start = time.perf_counter()
    for _ in range(slots):
        if env.t == env.cfg.slots_per_episode:
            env.reset()
        if env.deployment_due:
            obs = env.deployment_observation()
            env.deploy(greedy_fill(torch.rand(B, J, I, generator=gen), obs.model_bytes, obs.storage_bytes))
        uo = env.user_observation()
        # uniform among allowed servers: argmax of masked uniforms; splits 0..L_i are contiguous
        server = (torch.rand(B, K, J, generator=gen) * uo.server_mask).argmax(-1)
        levels = uo.split_mask.sum(-1)
        split = (torch.rand(B, K, generator=gen) * levels).long().clamp_max(levels - 1)
        if with_obs:
            _ = uo.local, uo.glob, env.allocation_observation(server, split).tokens
        share = torch.rand(2, B, J, K, generator=gen)
        tick = time.perf_counter()
        env.step(server, split, share[0], share[1])
        in_step += time.perf_counter() - tick
    return time.perf_counter() - start, in_step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profiles", default="data/profiles")
    parser.add_argument("--slots", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batches", default="1,256")
    parser.add_argument("--threads", default="1,2")
    args = parser.parse_args()

    cfg = EnvConfig()                                    # K = 50, J = 10, services_per_model = 5
    if any(Path(args.profiles).glob("*.json")):
        source, label = args.profiles, args.profiles
    else:
        from optimizer.env.synthetic import synthetic_zoo
        source, label = synthetic_zoo(), "SYNTHETIC tables (no real profiles found)"
    catalog = ServiceCatalog.from_profiles(source, cfg.services_per_model, cfg.compute_unit)
    print(f"profiles: {label}; I = {catalog.num_services}, Z = {catalog.max_splits}, K = {cfg.num_users}, "
          f"J = {cfg.num_servers}; torch {torch.__version__}, {platform.processor() or platform.machine()}")
    print("| B | threads | user-steps/s: step only | env + random actions | + observations (eq. 16–18) |")
    print("|---|---|---|---|---|")
    for threads in (int(t) for t in args.threads.split(",")):
        torch.set_num_threads(threads)
        for B in (int(b) for b in args.batches.split(",")):
            env = EdgeEnv(cfg, catalog, num_envs=B, seed=0)
            gen = torch.Generator().manual_seed(0)
            run(env, 20, True, gen)                     # warm-up
            user_steps = B * cfg.num_users * args.slots
            plain = [run(env, args.slots, False, gen) for _ in range(args.repeats)]
            full = [run(env, args.slots, True, gen) for _ in range(args.repeats)]
            step_rate = user_steps / statistics.median(t[1] for t in plain)
            env_rate = user_steps / statistics.median(t[0] for t in plain)
            obs_rate = user_steps / statistics.median(t[0] for t in full)
            print(f"| {B} | {threads} | {step_rate:,.0f} | {env_rate:,.0f} | {obs_rate:,.0f} |")

if __name__ == "__main__":
    main()
