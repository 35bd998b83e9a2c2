"""``cli.py train``: HC-MAPPO-L and its ablations. Parse, call the library, format."""

from __future__ import annotations

from dataclasses import replace

import click

from common.errors import UserInputError
from common.files import check_writable
from common.limits import SEED_MAX
from common.precision import PRECISIONS
from common.threads import available_cpus, set_threads
from optimizer.algos.ablations import ALGORITHMS
from optimizer.algos.config import PRESETS, build_configs
from optimizer.algos.group import group_runs, parse_seeds, seed_dir, write_group
from optimizer.algos.runner import SYNTHETIC, RunResult, train_group
from profiler.table import follow_profile_folder


@click.command()
@click.option("--algo", type=click.Choice(list(ALGORITHMS)), default="hc-mappo-l", show_default=True)
@click.option("--profiles", default="data/profiles", show_default=True,
              help="Folder of profile tables with leakage (a folder holding profiles/, such as data/, is "
                   "followed).")
@click.option("--synthetic-profiles", is_flag=True,
              help="Use the built-in SYNTHETIC tables instead of --profiles (not measurements).")
@click.option("--iterations", type=int, default=None, help="Training iterations [1000].")
@click.option("--num-envs", type=int, default=None, help="Batched env copies [10; 4 with --preset paper]; each "
              "runs rollout_slots slots per iteration [20; 50].")
@click.option("--seed", type=click.IntRange(0, SEED_MAX), default=None, help="Seed of networks, sampling and episodes [0].")
@click.option("--seeds", default=None, metavar="LIST",
              help="Train several seeds side by side in one process, e.g. 0-7 or 0,3,5: each is exactly the run "
                   "--seed S trains alone, in OUT/seed-S/ [--out default runs/ALGO-sLIST].")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="cpu", show_default=True)
@click.option("--precision", type=click.Choice(PRECISIONS), default=None,
              help="Matrix products in rollouts and updates: auto = bf16 autocast where the hardware "
                   "has it (weights, gradients and losses stay float32) [auto].")
@click.option("--threads", type=click.IntRange(min=1), default=1, show_default=True,
              help=f"torch CPU threads, 1..the CPUs this process may use ({available_cpus()} here; more is often "
                   "slower for these small tensors on a busy machine).")
@click.option("--preset", "preset_name", type=click.Choice(list(PRESETS)), default="default", show_default=True,
              help="paper: the paper's choices (one γ, GRU deployment with eq. 24, attention allocation, "
                   "dual ascent in seconds); default: ours (README, departures from the paper).")
@click.option("--warm-start", is_flag=True, default=None,
              help="Clone the users from the calibrated Lagrangian heuristic before PPO (off by default).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a TrainConfig field (lr=1e-3) or an env field (env.num_users=20).")
@click.option("--out", default=None, help="Run directory [runs/ALGO-sSEED]: config.json, metrics.csv, tb/, "
              "curves.png, checkpoint.pt.")
@click.option("--resume", is_flag=True, help="Continue the run in --out (only --iterations may change). The first "
              "Ctrl-C finishes the iteration, saves and exits 130; --resume then continues exactly.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def train(algo, profiles, synthetic_profiles, iterations, num_envs, seed, seeds, device, precision, threads,
          preset_name, warm_start, overrides, out, resume, quiet):
    """Train the three policy layers (deployment, users, allocation) under the delay limit τ̄."""
    if seeds is not None and seed is not None:
        raise UserInputError("--seed and --seeds: give one of them")
    group = parse_seeds(seeds, SEED_MAX) if seeds is not None else None
    if resume and group is None and seed is None and out and group_runs(out):
        group = [s for s, _ in group_runs(out)]        # --resume --out GROUP: the seeds it was started with
    set_threads(threads)
    cfg, env_cfg = build_configs(overrides, preset_name, warm_start=warm_start, algo=algo, iterations=iterations,
                                 num_envs=num_envs, seed=seed, device=device, precision=precision)
    source = SYNTHETIC if synthetic_profiles else profiles
    if not synthetic_profiles and not resume:      # --resume reads the run's own tables
        source, note = follow_profile_folder(profiles)
        if note:
            click.echo(note, err=True)
    out = out or f"runs/{cfg.algo}-s{seeds if group else cfg.seed}"
    check_writable(out, "--out", folder=True)  # before the catalog is built and the first iteration runs
    cfgs = [replace(cfg, seed=s) for s in group] if group else [cfg]
    dirs = [seed_dir(out, s) for s in group] if group else [out]
    record = (lambda: write_group(out, cfg.algo, group)) if group else None   # once every seed is checked
    results = train_group(cfgs, env_cfg, source, dirs, resume=resume, progress=not quiet, on_start=record,
                          warn=lambda message: click.echo(f"warning: {message}", err=True))
    for result in results:
        if result.history:
            _report(result, prefix=f"seed {result.seed}: " if group else "")
        if result.diverged:
            kept = (f"keeps the checkpoint of iteration {result.saved_iteration}" if result.saved_iteration
                    else "has no checkpoint")
            click.echo(f"error: {'seed %d ' % result.seed if group else ''}training diverged at {result.diverged}; "
                       f"{result.run_dir} {kept}", err=True)
    interrupted = any(r.interrupted for r in results)
    if interrupted:  # like any interrupted command: exit 130, so `train && evaluate` stops here
        saved = [r for r in results if r.saved_iteration > 0]
        where = (f"checkpoint at iteration {', '.join(str(r.saved_iteration) for r in saved)}; continue with "
                 f"--resume --out {out}" if saved else "before the first iteration finished; nothing to resume")
        click.echo(f"interrupted: {where}", err=True)
        raise SystemExit(130)
    if any(r.diverged for r in results):
        raise SystemExit(1)
    for result in results:
        if not result.history:
            click.echo(f"{result.run_dir}: nothing to do (already at {result.iterations} iterations)")


def _report(result: RunResult, prefix: str = "") -> None:
    """One line: the last iteration's delay against τ̄, cost, energy, privacy, success, λ."""
    last, tau_bar = result.history[-1], result.delay_limit_s
    verdict = "meets" if last["delay_s"] <= tau_bar else "VIOLATES"
    click.echo(f"{prefix}{result.algo}: iteration {result.iterations}, delay {last['delay_s']:.3f} s ({verdict} "
               f"τ̄ = {tau_bar:g} s), user cost {last['user_cost']:.3f}, energy {last['energy_j']:.3f} J, "
               f"privacy {last['privacy_cost']:.3f}, success {last['success_rate']:.3f}, "
               f"λ {last['lambda']:.3f}")
    click.echo(f"run directory: {result.run_dir}")
