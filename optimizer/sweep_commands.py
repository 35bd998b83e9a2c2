"""``cli.py sweep``: every experiment of the paper by one command. Parse, plan, run, record."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import click
from tqdm import tqdm

from common.files import check_writable
from common.limits import SEED_MAX
from common.threads import available_cpus
from optimizer.algos.group import parse_seeds
from optimizer.algos.runner import SYNTHETIC, load_catalog
from optimizer.sweep.engines import run_local, run_ray
from optimizer.sweep.folder import SweepFolder, git_commit
from optimizer.sweep.plan import estimate
from optimizer.sweep.spec import bundled_names, load_spec
from optimizer.sweep.trial import trials_of
from optimizer.algos.config import build_configs
from profiler.table import follow_profile_folder


@click.command("sweep")
@click.argument("spec_name", metavar="SPEC")
@click.option("--out", default=None, metavar="DIR", help="Sweep folder [results/sweeps/SPEC]; a rerun continues it.")
@click.option("--engine", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="local: a pool of worker processes on this machine; ray: Ray Tune (pip install -e '.[ray]').")
@click.option("--address", default=None, metavar="HOST:PORT",
              help="With --engine ray: join the cluster started by `ray start --head` (SWEEP on shared storage).")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help=f"Trials at a time, one torch thread each [the CPUs this process may use: {available_cpus()}].")
@click.option("--profiles", default="data/profiles", show_default=True, help="Profile tables of every setting.")
@click.option("--synthetic-profiles", is_flag=True, help="The built-in SYNTHETIC tables (plumbing checks only).")
@click.option("--iterations", type=click.IntRange(min=1), default=None, help="Training budget per run [the spec's].")
@click.option("--seeds", default=None, metavar="LIST", help="Seeds of every learner, e.g. 0-2 [the spec's].")
@click.option("--eval-episodes", type=click.IntRange(min=1), default=None, help="Evaluation episodes [the spec's].")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="A fixed override of every setting.")
@click.option("--dry-run", is_flag=True, help="Print the plan and stop.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def sweep(spec_name, out, engine, address, workers, profiles, synthetic_profiles, iterations, seeds, eval_episodes, overrides,
          dry_run, quiet):
    """Run the sweep SPEC: a bundled figure (fig4 … fig14; paper: all of them, each in its own folder) or a
    YAML file; see docs/sweeps.md."""
    names = bundled_names() if spec_name == "paper" else [spec_name]
    failed = False
    for name in names:
        where = (f"{out}/{name}" if out else None) if spec_name == "paper" else out
        code = _run_spec(name, where, engine, address, workers, profiles, synthetic_profiles, iterations, seeds,
                         eval_episodes, overrides, dry_run, quiet)
        if code == 130:
            raise SystemExit(130)
        failed = failed or code == 1
    if failed:
        raise SystemExit(1)


def _run_spec(spec_name, out, engine, address, workers, profiles, synthetic_profiles, iterations, seeds, eval_episodes,
              overrides, dry_run, quiet) -> int:
    """One spec: plan, run, record; 0 done, 1 some trial failed, 130 interrupted."""
    spec = load_spec(spec_name)
    changes = {"iterations": iterations, "eval_episodes": eval_episodes,
               "seeds": parse_seeds(seeds, SEED_MAX) if seeds else None,
               "set": list(spec.set) + list(overrides) if overrides else None}
    spec = replace(spec, **{k: v for k, v in changes.items() if v is not None})
    trials = trials_of(spec)
    for setting in spec.settings():          # every setting's config is checked before anything runs
        build_configs(setting.overrides, spec.preset)
    workers = workers or available_cpus()
    if synthetic_profiles:
        source = SYNTHETIC
    else:
        source, note = follow_profile_folder(profiles)
        if note:
            click.echo(note, err=True)
    load_catalog(source, build_configs(spec.settings()[0].overrides, spec.preset)[1])   # the tables read
    out = out or f"results/sweeps/{spec.name}"
    folder = SweepFolder(out)
    folder.check(spec, source)               # a folder of another sweep is refused before anything runs
    outcomes = [(t, folder.outcome(t)) for t in trials]
    todo = [t for t, o in outcomes if o is None or o.status != "done"]
    cost = estimate(spec, todo, [(t, o) for t, o in outcomes if o is not None])
    count = len(spec.settings())
    click.echo(f"{spec.name}: {count} setting{'s' if count > 1 else ''} × ({len(spec.algorithms)} algorithms × "
               f"{len(spec.seeds)} seeds + {len(spec.heuristics)} heuristics{' + the room' if spec.room else ''}) = "
               f"{len(trials)} trials, {len(trials) - len(todo)} done; "
               f"the rest ≈ {cost.core_s / 3600:.1f} core-hours, "
               f"≈ {cost.hours_on(workers, len(todo)):.1f} h on {workers} worker{'s' if workers > 1 else ''} "
               f"{cost.pace_words()}", err=True)
    if dry_run:
        return 0
    check_writable(out, "--out", folder=True)
    folder.open(spec, source)
    commit = git_commit(Path(__file__).resolve().parent)      # of the code that runs these trials
    bar = tqdm(total=len(trials), initial=len(trials) - len(todo), desc=spec.name, unit="trial",
               disable=quiet, dynamic_ncols=True)
    failures = []

    todo_keys = {t.key for t in todo}

    def on_outcome(trial, outcome):
        if trial.key not in todo_keys:        # done before this run (the ray engine reports every trial)
            return
        if outcome.status == "done":
            bar.update(1)
            folder.write_csv(spec, trials)
        elif outcome.status == "failed":
            failures.append(trial.key)
            tqdm.write(f"failed: {trial.key}: {outcome.error}")

    try:
        if engine == "ray":
            interrupted = run_ray(spec, trials, folder.root, source, workers, commit, on_outcome, address)
        else:
            interrupted = run_local(spec, todo, folder.root, source, workers, commit, on_outcome)
    finally:
        bar.close()
    folder.write_csv(spec, trials)
    finished = sum(folder.finished(t) for t in trials)
    click.echo(f"{out}: {finished} of {len(trials)} trials done"
               + (f", {len(failures)} failed (recorded in {out}/trials; a rerun tries them again)" if failures else ""))
    if interrupted:
        click.echo(f"interrupted: rerun the same command to continue {out}", err=True)
        return 130
    return 1 if failures else 0


@click.command("sweep-report")
@click.argument("folder", metavar="DIR")
def sweep_report(folder):
    """Figure, tables, the room and the paper's claims of the sweep in DIR (report.md, report.png)."""
    from optimizer.sweep.report import write_report

    md, png = write_report(folder)
    click.echo(f"wrote {md} and {png}")
