"""``cli.py evaluate``: heuristic baselines on the CMDP environment. Parse, call the library, format."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import click
import numpy as np

from common.devices import DEVICES, resolve_device
from common.errors import UserInputError
from common.files import atomic_open, check_writable
from common.limits import SEED_MAX
from common.text import align_columns
from common.threads import available_cpus, check_threads, set_threads
from optimizer import baselines
from optimizer.algos.runner import SYNTHETIC
from optimizer.algos.group import group_runs
from optimizer.algos.trained import TrainedRun, load_trained
from optimizer.config import EvaluateConfig, apply_overrides, from_dict, load_file, to_dict
from optimizer.env import EdgeEnv, ServiceCatalog
from optimizer.env.metrics import METRIC_NAMES, METRICS
from optimizer.evaluate import EvalResult, evaluate_baseline, run_episodes
from profiler.table import follow_profile_folder

#: Where ``evaluate`` reads its tables when neither --profiles nor a --checkpoint names them.
DEFAULT_PROFILES = "data/profiles"


def _cell(mean: float, ci95: float) -> str:
    """``mean ± ci``; ``n/a`` where there is no value or no interval (one episode)."""
    if not math.isfinite(mean):
        return "n/a"
    return f"{mean:.4g} ± {ci95:.2g}" if math.isfinite(ci95) else f"{mean:.4g} ± n/a"


def format_table(results: dict[str, EvalResult]) -> str:
    """One column per policy, one row per metric (README "Metrics"), then the C8 verdict."""
    rows = []
    for name in METRIC_NAMES:
        rows.append([METRICS[name].title] + [_cell(r.summary()[name].mean, r.summary()[name].ci95)
                                             for r in results.values()])
    verdicts = []
    for res in results.values():
        verdict = "yes" if res.delay_ok else "NO"
        if "lambda" in res.extra:
            verdict += f" (λ={res.extra['lambda']:.3g})"
        verdicts.append(verdict)
    rows.append(["delay <= limit"] + verdicts)
    rows.append(["allocation"] + [str(r.extra.get("allocation", "learned")) for r in results.values()])
    return "\n".join(align_columns(["metric"] + list(results), rows, left=range(len(results) + 1)))


def _write_results(path: Path, results: dict[str, EvalResult], cfg: EvaluateConfig, profiles: str) -> None:
    records = [{"policy": name, **res.to_record()} for name, res in results.items()]
    if path.suffix.lower() == ".json":
        text = json.dumps({"profiles": profiles, "config": to_dict(cfg), "results": records}, indent=1,
                          allow_nan=False) + "\n"
    elif path.suffix.lower() == ".csv":
        buf = io.StringIO()
        keys = ["policy"] + [k for m in METRIC_NAMES for k in (m, m + "_ci95")] + [
            "episodes", "delay_limit_s", "delay_ok", "deployment", "allocation", "lambda"]
        writer = csv.DictWriter(buf, fieldnames=keys, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(records)
        text = buf.getvalue()
    else:
        raise UserInputError(f"--out {path}: must end in .json or .csv")
    with atomic_open(path, newline="") as fh:
        fh.write(text)


def _merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for key, value in extra.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def _load_config(config_path: str | None, overrides: list[str], checkpoint_env: object | None) -> EvaluateConfig:
    """Defaults (or the checkpoint's env config) ← file ← --set."""
    data = {"env": to_dict(checkpoint_env)} if checkpoint_env is not None else {}
    if config_path:
        data = _merge(data, load_file(config_path))
    return from_dict(EvaluateConfig, apply_overrides(data, overrides))


def _load_members(checkpoint: str, device: str) -> dict[str, TrainedRun]:
    """The trained run at ``checkpoint``, or every seed of the group folder there, by folder name."""
    runs = group_runs(checkpoint)
    if runs is None:
        return {str(checkpoint): load_trained(checkpoint, device=device)}
    members = {str(folder): load_trained(folder, device=device) for _, folder in runs}
    first = next(iter(members.values()))
    for name, run in members.items():
        if (run.env_config, run.profiles) != (first.env_config, first.profiles):
            raise UserInputError(f"--checkpoint {checkpoint}: {name} was trained on another environment or tables "
                                 "than the group's first seed")
    return members


def _over_seeds(per_seed: list[EvalResult], label: str) -> EvalResult:
    """Mean ± 95 % CI over seeds: each seed's mean over the shared episodes is one sample."""
    samples = {name: np.array([float(np.mean(r.samples[name])) for r in per_seed]) for name in METRIC_NAMES}
    return EvalResult(samples, per_seed[0].delay_limit_s,
                      {"policy": label, "seeds": len(per_seed), "episodes_per_seed": len(per_seed[0].samples["delay_s"])})


@click.command()
@click.option("--policy", default="all", show_default=True,
              type=click.Choice(list(baselines.baseline_names("user")) + ["all", "none"]),
              help="User baseline (association + split); 'all' compares every one; 'none' with --checkpoint.")
@click.option("--checkpoint", default=None, metavar="PATH",
              help="Also evaluate a trained run (directory or checkpoint file); its env config is the base. A "
                   "group folder (train --seeds) evaluates every seed on the same episodes, with mean ± 95 % CI "
                   "over seeds.")
@click.option("--deployment", default="popularity", show_default=True,
              type=click.Choice(list(baselines.baseline_names("deployment"))), help="Deployment baseline.")
@click.option("--allocation", default=None, type=click.Choice(list(baselines.baseline_names("allocation"))),
              help="Allocation baseline of the user baselines [default: each one's own: equal share, 'best' for "
                   "lagrangian]; a --checkpoint policy keeps its own allocation.")
@click.option("--profiles", default=None, metavar="DIR",
              help="Folder of profile tables with leakage (python cli.py profile / leakage); a folder holding "
                   "profiles/, such as data/, is followed [default: with --checkpoint the run's own tables, "
                   "else data/profiles].")
@click.option("--synthetic-profiles", is_flag=True,
              help="Use built-in SYNTHETIC tables instead of --profiles (plumbing checks only; not measurements).")
@click.option("--episodes", type=int, default=None, metavar="N",
              help="Copy-episodes per policy [config: episodes, 5].")
@click.option("--slots", type=int, default=None, metavar="T",
              help="Slots per episode [config: env.slots_per_episode, 200].")
@click.option("--seed", type=click.IntRange(0, SEED_MAX), default=None, metavar="S", help="Seed of the evaluation episodes [config: seed, 0].")
@click.option("--num-envs", type=int, default=None, metavar="B", help="Copies run in parallel [config: num_envs, 5].")
@click.option("--config", "config_path", default=None, metavar="FILE", help="YAML or TOML file with config values.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a config value, e.g. --set env.num_users=80 (repeatable).")
@click.option("--device", type=click.Choice(DEVICES), default="cpu", show_default=True,
              help="torch device for the environment (auto: CUDA if available).")
@click.option("--threads", type=click.IntRange(min=1), default=1, show_default=True,
              help=f"torch CPU threads, 1..the CPUs this process may use ({available_cpus()} here; 1 is fastest "
                   "for these small tensors on a shared machine).")
@click.option("--out", default=None, metavar="FILE", help="Write the results to FILE.json or FILE.csv.")
def evaluate(policy, checkpoint, deployment, allocation, profiles, synthetic_profiles, episodes, slots, seed, num_envs,
             config_path, overrides, device, threads, out):
    """Heuristic baselines (and a trained policy) on the environment: energy, privacy, delay, success, cost."""
    cli_sets = [f"{k}={v}" for k, v in (("episodes", episodes), ("env.slots_per_episode", slots),
                                        ("seed", seed), ("num_envs", num_envs)) if v is not None]
    device = str(resolve_device(device))  # fail on --device cuda without a GPU before any work
    check_threads(threads)
    trained, members = None, {}
    if checkpoint:
        members = _load_members(checkpoint, device)
        trained = next(iter(members.values()))
    elif policy == "none":
        raise UserInputError("--policy none evaluates nothing without --checkpoint")
    cfg = _load_config(config_path, list(overrides) + cli_sets, trained.env_config if trained else None)
    if out and Path(out).suffix.lower() not in (".json", ".csv"):
        raise UserInputError(f"--out {out}: must end in .json or .csv")
    if out:
        check_writable(out)
    set_threads(threads)
    if profiles is None:
        profiles = trained.profiles if trained else DEFAULT_PROFILES
        synthetic_profiles = synthetic_profiles or profiles == SYNTHETIC
    if synthetic_profiles:
        from optimizer.env.synthetic import synthetic_zoo
        click.echo("warning: SYNTHETIC profile tables: the numbers below are not measurements", err=True)
        source, profiles = synthetic_zoo(), "synthetic"
    else:
        profiles, note = follow_profile_folder(profiles)   # recorded in --out as followed
        source = profiles
        if note:
            click.echo(note, err=True)
    catalog = ServiceCatalog.from_profiles(source, cfg.env.services_per_model, cfg.env.compute_unit,
                                           cfg.env.defenses)
    env = EdgeEnv(cfg.env, catalog, num_envs=cfg.num_envs, device=device, seed=cfg.seed)
    for name, run in members.items():
        run.check_fits(env, name)             # before any episode: a mismatch would fail mid-episode
    if catalog.leakage_warning:
        click.echo(f"warning: {catalog.leakage_warning}", err=True)
    names = {"all": baselines.baseline_names("user"), "none": ()}.get(policy, (policy,))
    results = {}
    for name, run in members.items():
        click.echo(f"evaluating {name} ({cfg.episodes} episodes × {cfg.env.slots_per_episode} slots)", err=True)
        res = run_episodes(env, run.deployment, run.user, run.allocation, cfg.episodes, cfg.seed, progress=True)
        label = "learned" if len(members) == 1 else f"seed-{run.train_config.seed}"
        res.extra.update({"policy": label, "checkpoint": str(name), "seed": run.train_config.seed})
        results[label] = res
    if len(members) > 1:
        label = f"{trained.train_config.algo} ({len(members)} seeds)"
        results[label] = _over_seeds(list(results.values()), label)
    for name in names:
        click.echo(f"evaluating {name} ({cfg.episodes} episodes × {cfg.env.slots_per_episode} slots)", err=True)
        results[name] = evaluate_baseline(name, env, cfg.episodes, cfg.seed, deployment, allocation,
                                          cfg.lagrangian_calibration_episodes, cfg.lagrangian_bisection_steps,
                                          progress=True)
    B, J, K, I, Z = env.dims
    allocs = sorted({str(r.extra["allocation"]) for r in results.values() if "allocation" in r.extra})
    click.echo(f"J={J} servers, K={K} users, I={I} services; baselines: {deployment} deployment, "
               f"{'/'.join(allocs) or 'learned'} allocation; τ̄={cfg.env.cost.delay_limit_s:g} s; "
               f"mean ± 95 % CI over {cfg.episodes} episodes (README: Metrics)")
    click.echo(format_table(results))
    if out:
        _write_results(Path(out), results, cfg, str(profiles))
        click.echo(f"wrote {out}", err=True)
