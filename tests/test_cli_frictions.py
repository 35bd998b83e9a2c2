"""Frictions of issue 21 that are not bad input: what a new user types works, and the screen says what it used.

- ``--profiles data/`` (a folder holding ``profiles/``) is followed by train and evaluate, with a note;
- ``train --resume`` finds the run's tables from any folder (and an old run's record still resumes);
- ``evaluate --checkpoint`` reads the run's own tables unless ``--profiles`` is given, and a run that does
  not fit the environment is refused before any episode;
- ``profile``'s first line says the costs' input size and that weights do not enter them; the leakage line
  says the image size and weights the leakage was measured with, and when that size is not the costs';
- the library refuses what the CLI refuses (non-finite TrainConfig values, latency counts, thread counts).
"""

from __future__ import annotations

import csv
import json
import math
import shutil
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from cli import main
from common.errors import UserInputError
from common.threads import available_cpus, check_threads
from optimizer.algos import checkpoint
from optimizer.algos.config import TrainConfig
from profiler.latency import LatencyConfig
from profiler.table import follow_profile_folder

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "profiles"
#: About a second of training: J = 2, K = 3, the two fixture tables, 4-slot episodes, 8-wide networks.
TINY_RUN = ["--set", "env.num_servers=2", "--set", "env.num_users=3", "--quiet", "--set", "num_envs=1",
            "--set", "rollout_slots=2", "--set", "env.slots_per_episode=4", "--set", "env.delta_t=2",
            "--set", "hidden_user=8", "--set", "hidden_deployment=8", "--set", "hidden_allocation=8",
            "--set", "tensorboard=false"]
EPISODE = ["--policy", "none", "--episodes", "1", "--slots", "2", "--num-envs", "1"]


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def _run(*args: str):
    return CliRunner().invoke(main, list(args))


@pytest.fixture(scope="module")
def trained_home(tmp_path_factory) -> Path:
    """``data/profiles/`` (copies of the two fixture tables) and ``run/``, one iteration trained on them."""
    folder = tmp_path_factory.mktemp("home")
    shutil.copytree(FIXTURES, folder / "data" / "profiles")
    threads = torch.get_num_threads()
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(folder)
        trained = _run("train", "--profiles", "data/profiles", "--iterations", "1", "--out", "run", *TINY_RUN)
    torch.set_num_threads(threads)
    assert trained.exit_code == 0, trained.output
    return folder


@pytest.fixture
def home(tmp_path: Path, monkeypatch) -> Path:
    """A user's folder, the cwd: ``data/profiles/`` holding copies of the two fixture tables."""
    shutil.copytree(FIXTURES, tmp_path / "data" / "profiles")
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def run_home(trained_home: Path, tmp_path: Path, monkeypatch) -> Path:
    """This test's own copy of :func:`trained_home`, the cwd."""
    shutil.copytree(trained_home, tmp_path / "home")
    monkeypatch.chdir(tmp_path / "home")
    return tmp_path / "home"


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_a_folder_holding_profiles_is_followed_by_train_and_evaluate(home):
    trained = _run("train", "--profiles", "data/", "--iterations", "1", "--out", "run", *TINY_RUN)
    assert trained.exit_code == 0, trained.output
    assert trained.stderr.splitlines()[0] == "data/: using data/profiles/ (2 tables)"
    config = json.loads((home / "run" / "config.json").read_text())
    assert config["profiles"] == "data/profiles" and config["services"][0].startswith("tiny_a")
    evaluated = _run("evaluate", "--profiles", "data", "--policy", "local-only", "--episodes", "1", "--slots", "1",
                     "--num-envs", "1", "--set", "env.num_servers=2", "--set", "env.num_users=3")
    assert evaluated.exit_code == 0, evaluated.output
    assert "data: using data/profiles/ (2 tables)" in evaluated.stderr.splitlines()
    # a folder with tables of its own is used as it is, and one with neither says where to look
    assert follow_profile_folder(home / "data" / "profiles") == (str(home / "data" / "profiles"), None)
    (home / "empty").mkdir()
    refused = _run("train", "--profiles", "empty", "--out", "other", *TINY_RUN)
    assert refused.exit_code == 2 and "nor in empty/profiles" in refused.stderr and "data/profiles" in refused.stderr


def test_resume_finds_the_tables_from_any_folder(run_home):
    home = run_home
    config = json.loads((home / "run" / "config.json").read_text())
    assert config["profiles_from_run"] == "../data/profiles"     # relative to run/, worked out by hand
    (home / "elsewhere").mkdir()
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(home / "elsewhere")    # data/profiles does not exist from here
        resumed = _run("train", "--resume", "--out", "../run", "--iterations", "2", "--quiet")
    assert resumed.exit_code == 0, resumed.output
    assert [r["iteration"] for r in _rows(home / "run" / "metrics.csv")] == ["1", "2"]
    assert not (home / "elsewhere" / "data").exists()


def test_an_old_run_without_profiles_from_run_still_resumes_and_gains_it(run_home):
    home = run_home
    saved = checkpoint.load(home / "run")
    del saved["profiles_from_run"]        # a checkpoint written before 2026-12-02
    checkpoint.save(home / "run", {k: v for k, v in saved.items() if k != "format"})
    assert "profiles_from_run" not in checkpoint.load(home / "run")
    (home / "elsewhere").mkdir()
    with pytest.MonkeyPatch.context() as mp:   # from another folder its cwd-relative record cannot be found
        mp.chdir(home / "elsewhere")
        lost = _run("train", "--resume", "--out", "../run", "--iterations", "2", "--quiet")
    assert lost.exit_code == 2 and lost.stderr == ("error: --resume --out ../run: its profile tables data/profiles "
                                                   "are not found (recorded relative to the folder it was trained "
                                                   "in: resume from there once, then from anywhere)\n")
    resumed = _run("train", "--resume", "--out", "run", "--iterations", "2", "--quiet")
    assert resumed.exit_code == 0, resumed.output
    assert checkpoint.load(home / "run")["profiles_from_run"] == "../data/profiles"


def test_evaluate_reads_the_runs_own_tables_and_refuses_a_run_that_does_not_fit(run_home):
    home = run_home
    (home / "elsewhere").mkdir()
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(home / "elsewhere")
        ok = _run("evaluate", "--checkpoint", "../run", *EPISODE)
    assert ok.exit_code == 0, ok.output
    assert "J=2 servers, K=3 users, I=10 services" in ok.stdout     # 2 tables × 5 services
    # the bundled tables (9 models × 5 services, up to 19 + 1 split points) do not fit a run trained on two
    shutil.copytree(ROOT / "data" / "profiles", home / "bundled")
    refused = _run("evaluate", "--checkpoint", "run", "--profiles", "bundled", *EPISODE)
    assert refused.exit_code == 2, refused.output
    lines = [line for line in refused.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: --checkpoint run: the run does not fit"), refused.stderr
    assert "I services: 10 in training, 45 here" in lines[0] and "--profiles data/profiles" in lines[0]
    assert "evaluating" not in refused.stderr       # before any episode


def test_profile_header_says_what_the_costs_and_the_leakage_were_measured_with(home):
    bundled = json.loads((ROOT / "data" / "profiles" / "lenet7.json").read_text())
    (home / "data" / "profiles" / "lenet7.json").write_text(json.dumps(bundled))
    lines = _run("profile", "lenet7", "--no-latency").stdout.splitlines()
    assert lines[0] == ("lenet7: 7 units; costs at input 3×32×32 (12.29 kB); weights: n/a for costs (they do not "
                        "change MACs, bytes or params; profiled with none); latency not measured")
    assert lines[1] == ("leakage SSIM from data/profiles/lenet7.json: measured on 32 px images with weights "
                        "data/weights/lenet7-fashion-mnist.pt, quick budget, seed 0 (raw SSIM; 1 at z = 0, 0 at z = L)")
    # leakage measured at another size than the costs (vgg19: 64 px beside 224 px) says so
    bundled["leakage_meta"].update(image_size=16, weights="none")
    (home / "data" / "profiles" / "lenet7.json").write_text(json.dumps(bundled))
    lines = _run("profile", "lenet7", "--no-latency").stdout.splitlines()
    assert lines[1] == ("leakage SSIM from data/profiles/lenet7.json: measured on 16 px images (the costs above are "
                        "at 32×32 px) with weights none (seeded random init), quick budget, seed 0 (raw SSIM; 1 at "
                        "z = 0, 0 at z = L)")


def test_profile_out_suffix_sets_the_format_and_all_takes_a_folder(home):
    text = _run("profile", "lenet7", "--no-latency", "--out", "t.txt")
    assert text.exit_code == 0 and (home / "t.txt").read_text().startswith("lenet7: 7 units; costs at input")
    refused = _run("profile", "lenet7", "--no-latency", "--out", "t.xyz")
    assert refused.exit_code == 2 and not (home / "t.xyz").exists()
    refused = _run("profile", "--all", "--no-latency", "--out", "all.json")
    assert refused.exit_code == 2 and not (home / "all.json").exists()


def test_the_library_refuses_what_the_cli_refuses():
    for field in ("lr", "clip", "lambda_init", "pid_kp"):
        for value in (math.nan, math.inf):
            with pytest.raises(UserInputError, match=f"'{field}' must be a finite number"):
                TrainConfig(**{field: value}).validate()
    TrainConfig().validate()
    for kwargs in ({"repeats": 1001}, {"repeats": 0}, {"warmup": 1001}, {"warmup": -1}):
        with pytest.raises(UserInputError):
            LatencyConfig(**kwargs)
    assert LatencyConfig(repeats=1000, warmup=1000).repeats == 1000
    cpus = available_cpus()
    assert check_threads(cpus) == cpus and check_threads(1) == 1
    for bad in (0, cpus + 1, 100000):
        with pytest.raises(UserInputError, match=f"--threads {bad}: .* give 1..{cpus}"):
            check_threads(bad)
