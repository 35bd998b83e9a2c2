"""``cli.py sweep`` on a tiny spec: the grid, trials in worker processes, the tidy CSV, a failed trial
recorded while the sweep goes on, a finished trial never run again, and the bundled figure specs."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from common.errors import UserInputError
from optimizer.sweep.spec import bundled_names, load_spec, parse_spec
from optimizer.algos.config import build_configs

FIXTURES = str(Path(__file__).parent / "fixtures" / "profiles")
TINY = ["env.num_servers=2", "env.num_users=3", "env.slots_per_episode=6", "env.delta_t=2",
        "env.services_per_model=1", "hidden_user=8", "hidden_deployment=8", "hidden_allocation=8",
        "embedding_dim=4", "ppo_epochs=1", "num_envs=2", "precision=fp32"]


def _spec(tmp_path: Path, **fields) -> Path:
    data = {"name": "tiny", "axes": [{"name": "tau_bar_s", "keys": ["env.cost.delay_limit_s"], "values": [2.0, 4.0]}],
            "algorithms": ["hc-mappo-l"], "heuristics": ["greedy"], "seeds": [0, 1], "iterations": 2,
            "eval_episodes": 2, "set": TINY + ["rollout_slots=2"], "room": False, **fields}
    path = tmp_path / "tiny.yaml"
    path.write_text(json.dumps(data))          # JSON is YAML
    return path


def _csv(folder: Path) -> list[dict]:
    with open(folder / "results.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def test_the_grid_is_the_product_of_the_axes_and_moves_grouped_keys_together():
    spec = parse_spec({"name": "g", "algorithms": ["h-mappo"], "axes": [
        {"name": "a", "keys": ["env.num_users"], "values": [10, 20]},
        {"name": "band", "keys": ["env.capacity.user_flops", "env.num_servers"],
         "values": [[[1e9, 2e9], 3], [[4e9, 5e9], 6]]}]})
    settings = spec.settings()
    assert len(settings) == 4
    assert settings[3].overrides == ("env.num_users=20", "env.capacity.user_flops=[4000000000.0, 5000000000.0]",
                                     "env.num_servers=6")
    assert len({s.slug for s in settings}) == 4
    _, env = build_configs(settings[3].overrides)
    assert env.capacity.user_flops == (4e9, 5e9) and env.num_servers == 6 and env.num_users == 20


@pytest.mark.parametrize("name", bundled_names())
def test_every_bundled_figure_spec_builds_every_setting(name):
    spec = load_spec(name)
    assert spec.algorithms and spec.heuristics and spec.iterations == 1000 and len(spec.seeds) == 3
    for setting in spec.settings():
        build_configs(setting.overrides, spec.preset)


def test_bad_specs_are_refused_in_one_line(tmp_path):
    for bad in ({"name": "x", "algorithms": ["nope"]}, {"name": "x"}, {"name": "x", "algorithms": ["h-mappo"],
                "seeds": [1, 1]}, {"name": "x", "heuristics": ["greedy"], "colour": 3},
                {"name": "x", "heuristics": ["greedy"], "axes": [{"name": "a", "keys": ["p", "q"], "values": [1]}]}):
        with pytest.raises(UserInputError):
            parse_spec(bad)


def test_a_tiny_sweep_runs_records_and_never_repeats_a_finished_trial(tmp_path):
    from cli import main

    out = tmp_path / "sweep"
    spec = _spec(tmp_path, axes=[{"name": "rollout", "keys": ["rollout_slots"], "values": [2, 5]}])
    args = ["sweep", str(spec), "--out", str(out), "--profiles", FIXTURES, "--workers", "2", "--quiet"]
    first = CliRunner().invoke(main, args)
    # rollout_slots = 5 does not divide the 6-slot episode: that learner fails, in one line, the rest goes on
    assert first.exit_code == 1, first.output
    assert "failed: s01-rollout=5/hc-mappo-l: UserInputError" in first.output
    assert "3 of 4 trials done, 1 failed" in first.output
    rows = _csv(out)
    learned = [r for r in rows if r["policy"] == "hc-mappo-l"]
    assert {r["seed"] for r in learned} == {"0", "1"} and {r["setting"] for r in learned} == {"s00-rollout=2"}
    assert {r["metric"] for r in rows} >= {"charged_cost", "delay_s", "success_rate"}
    assert all(r["seed"] == "" and r["iterations"] == "0" for r in rows if r["policy"] == "greedy")
    greedy = {r["setting"]: r for r in rows if r["policy"] == "greedy" and r["metric"] == "user_cost"}
    assert greedy["s00-rollout=2"]["value"] == greedy["s01-rollout=5"]["value"]   # the trainer's key: same env
    stamps = {p: p.stat().st_mtime_ns for p in (out / "trials").rglob("*.json")}
    again = CliRunner().invoke(main, args)
    assert again.exit_code == 1 and "3 of 4 trials done" in again.output
    assert {p: p.stat().st_mtime_ns for p in stamps if "rollout=2" in str(p)} == \
        {p: t for p, t in stamps.items() if "rollout=2" in str(p)}               # finished: not run again
    failed = json.loads((out / "trials" / "s01-rollout=5" / "hc-mappo-l.json").read_text())
    assert failed["status"] == "failed" and "rollout_slots" in failed["error"]
    other = CliRunner().invoke(main, args[:2] + ["--out", str(out), "--iterations", "3", "--quiet"])
    assert other.exit_code == 2 and "another sweep" in other.output


def test_a_learner_in_a_sweep_is_the_run_train_makes(tmp_path):
    """Same seed, setting and budget: the sweep's run folder holds what `train` trains, and its evaluation
    is the trained policy's on the setting's episodes."""
    from cli import main
    from optimizer.sweep.spec import EVAL_SEED

    out = tmp_path / "sweep"
    spec = _spec(tmp_path, axes=[], heuristics=[], seeds=[1])
    done = CliRunner().invoke(main, ["sweep", str(spec), "--out", str(out), "--profiles", FIXTURES, "--workers", "1",
                                     "--quiet"])
    assert done.exit_code == 0, done.output
    sets = [f"--set={kv}" for kv in TINY + ["rollout_slots=2", "tensorboard=false"]]
    alone = CliRunner().invoke(main, ["train", "--profiles", FIXTURES, "--iterations", "2", "--seed", "1", "--quiet",
                                      "--out", str(tmp_path / "alone"), *sets])
    assert alone.exit_code == 0, alone.output
    run = out / "runs" / "s00-default" / "hc-mappo-l" / "seed-1"
    assert (run / "metrics.csv").read_text().splitlines()[1:] != []
    strip = lambda text: [line.split(",")[3:] for line in text.splitlines()[1:]]   # noqa: E731 (no timings)
    assert [r[:12] for r in strip((run / "metrics.csv").read_text())] == \
        [r[:12] for r in strip((tmp_path / "alone" / "metrics.csv").read_text())]
    evaluated = CliRunner().invoke(main, ["evaluate", "--checkpoint", str(tmp_path / "alone"), "--policy", "none",
                                          "--episodes", "2", "--seed", str(EVAL_SEED), "--num-envs", "2",
                                          "--out", str(tmp_path / "e.json")])
    assert evaluated.exit_code == 0, evaluated.output
    record = json.loads((tmp_path / "e.json").read_text())["results"][0]
    rows = {r["metric"]: float(r["value"]) for r in _csv(out)}
    assert rows["user_cost"] == pytest.approx(record["user_cost"], rel=1e-9)
    assert rows["charged_cost"] == pytest.approx(record["charged_cost"], rel=1e-9)


def test_ctrl_c_stops_a_sweep_with_130_and_a_rerun_finishes_it_as_if_uninterrupted(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    root = Path(__file__).resolve().parents[1]
    spec = _spec(tmp_path, axes=[], heuristics=["greedy"], seeds=[0, 1], iterations=6)

    def command(out):
        return [sys.executable, str(root / "cli.py"), "sweep", str(spec), "--out", str(out), "--profiles", FIXTURES,
                "--workers", "1", "--quiet"]

    reference = subprocess.run(command(tmp_path / "ref"), capture_output=True, text=True, timeout=300)
    assert reference.returncode == 0, reference.stderr
    out = tmp_path / "cut"
    proc = subprocess.Popen(command(out), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    deadline = time.monotonic() + 240
    csv_file = out / "runs" / "s00-default" / "hc-mappo-l" / "seed-0" / "metrics.csv"
    while time.monotonic() < deadline and not (csv_file.is_file() and len(csv_file.read_text().splitlines()) >= 3):
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGINT)                     # Ctrl-C reaches the whole foreground group
    _, err = proc.communicate(timeout=240)
    assert proc.returncode == 130, err
    assert "rerun the same command" in err and "Traceback" not in err
    assert len(csv_file.read_text().splitlines()) < 7       # stopped before seed 0 finished its 6 iterations
    rerun = subprocess.run(command(out), capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    keep = lambda rows: sorted((r["policy"], r["seed"], r["metric"], r["value"]) for r in rows)   # noqa: E731
    assert keep(_csv(out)) == keep(_csv(tmp_path / "ref"))


def test_the_report_shows_every_setting_the_room_and_the_claims(tmp_path):
    from cli import main

    out = tmp_path / "sweep"
    spec = _spec(tmp_path, room=True, seeds=[0, 1], heuristics=["greedy", "edge-only"], iterations=1,
                 claims=["HC-MAPPO-L is cheapest",
                         {"text": "greedy meets τ̄", "check": "bound", "policies": ["greedy"], "metric": "delay_s",
                          "below": "tau_bar"}])
    done = CliRunner().invoke(main, ["sweep", str(spec), "--out", str(out), "--profiles", FIXTURES, "--workers", "2",
                                     "--quiet"])
    assert done.exit_code == 0, done.output
    report = CliRunner().invoke(main, ["sweep-report", str(out)])
    assert report.exit_code == 0, report.output
    text = (out / "report.md").read_text()
    assert text.count("## tau_bar_s ") == 2 and "(τ̄ = 2 s)" in text and "(τ̄ = 4 s)" in text
    assert text.count("Room: the hindsight reference lies") == 2
    assert "| HC-MAPPO-L is cheapest |  | stated, not checked | — |" in text
    assert "| greedy meets τ̄ | greedy: delay_s ≤ τ̄ | tau_bar_s 2: " in text      # one mean per setting
    assert "| greedy | 2 |" in text and "(n = 2)" in text
    assert (out / "report.png").stat().st_size > 10_000
    # the per-user distribution (Fig. 6): quantile rows for every policy and seed, a table and a figure
    p50 = [r for r in _csv(out) if r["metric"] == "user_charged_cost_p50"]
    assert len(p50) == 2 * (1 * 2 + 2 + 1)                     # 2 settings × (hc-mappo-l × 2 seeds + 2 + room)
    assert "## Per-user charged cost (Fig. 6)" in text and "| policy | p05 | p25 | p50 | p75 | p95 |" in text
    assert (out / "report_users.png").stat().st_size > 10_000
    missing = CliRunner().invoke(main, ["sweep-report", str(tmp_path)])
    assert missing.exit_code == 2 and "not a sweep folder" in missing.output


def test_few_seed_statistics_against_hand_values():
    import numpy as np

    from optimizer.sweep.stats import probability_of_improvement, relative_difference

    a = [np.array([90.0, 110.0]), np.array([45.0, 55.0])]
    b = [np.array([200.0]), np.array([50.0])]                       # a heuristic: one value per setting
    diff = relative_difference(a, b)
    assert diff.value == pytest.approx(((100 - 200) / 200 + (50 - 50) / 50) / 2)    # −25 %
    assert diff.low <= diff.value <= diff.high and diff.n == 2
    assert diff.low == pytest.approx((90 / 200 - 1 + 45 / 50 - 1) / 2)           # both settings' lower seeds
    p = probability_of_improvement(a, b)
    assert p.value == pytest.approx((1.0 + 0.5) / 2)                              # setting 2: one below, one above
    same = probability_of_improvement([np.array([1.0, 1.0])], [np.array([1.0, 1.0])])
    assert same.value == 0.5 and same.low == same.high == 0.5


def test_the_ray_engine_runs_the_same_trials_to_the_same_numbers(tmp_path):
    pytest.importorskip("ray")       # CI installs it (Makefile: '.[test,ray]')
    from cli import main

    spec = _spec(tmp_path, axes=[], seeds=[0], heuristics=["greedy"], iterations=1)
    outs = {}
    for engine in ("local", "ray"):
        out = tmp_path / engine
        done = CliRunner().invoke(main, ["sweep", str(spec), "--out", str(out), "--profiles", FIXTURES, "--workers",
                                         "2", "--engine", engine, "--quiet"])
        assert done.exit_code == 0, done.output
        outs[engine] = sorted((r["policy"], r["seed"], r["metric"], r["value"]) for r in _csv(out))
    assert len(outs["local"]) == 2 * (13 + 5) and outs["ray"] == outs["local"]     # 13 metrics, 5 per-user quantiles
    assert (tmp_path / "ray" / "ray" / "tune").is_dir()                  # Tune's own experiment state
    again = CliRunner().invoke(main, ["sweep", str(spec), "--out", str(tmp_path / "ray"), "--profiles", FIXTURES,
                                      "--engine", "ray", "--quiet"])
    assert again.exit_code == 0 and "2 of 2 trials done" in again.output    # restored, nothing run again
