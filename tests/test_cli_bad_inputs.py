"""Every command against a table of bad inputs: one line on stderr, exit code 2, nothing written.

Each case runs in a scratch folder (the current directory too) holding a few prepared inputs; the test
snapshots every file there (name, size, content hash) before and after, so a half-written table, a
stray run directory or a probe file left behind fails it. Every case must fail before any real work
(no model is profiled, no decoder trained, no episode run), which keeps the whole table fast.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from cli import main
from common.threads import available_cpus

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "profiles"
TINY = ["--profiles", "fixtures", "--set", "env.num_servers=2", "--set", "env.num_users=3"]
EVALUATE = ["evaluate", *TINY, "--policy", "local-only", "--episodes", "1", "--slots", "1", "--num-envs", "1"]
TRAIN = ["train", *TINY, "--iterations", "1", "--quiet"]

# (command line, a word the error line must contain). Paths are relative to the scratch folder, which
# holds: plain (a file), empty/ (an empty folder), fixtures/ (two valid tables with leakage),
# lenet7.json (a valid lenet7 table), garbage.json (not JSON), bad.yaml (not YAML), nets.py, onetable/ (one
# fixture table), trained/ (a tiny run trained on fixtures/, see TINY_RUN).
CASES = [
    # zoo
    (["zoo", "--bogus"], "--bogus"),
    (["zoo", "extra"], "extra"),
    # profile: which model
    (["profile"], "give one model"),
    (["profile", "nosuchmodel"], "unknown model"),
    (["profile", "lenet7", "--model", "lenet9"], "two models"),
    (["profile", "--all", "--input-shape", "3,32,32"], "--all"),
    (["profile", "--model", "nosuchpkg.mod:f"], "cannot import"),
    (["profile", "--model", "/somewhere/nets.py:f"], "module name"),
    (["profile", "--model", "nets.py:tiny"], "module name"),
    (["profile", "--model", "nets:nosuch"], "no callable"),
    (["profile", "--model", "nets:not_a_model", "--input-shape", "3,8,8"], "not an nn.Module"),
    (["profile", "--model", "nets:"], "package.module:factory"),
    (["profile", "--model", "nets:tiny"], "no input shape"),
    # profile: input shape
    (["profile", "lenet7", "--input-shape", "3,32"], "3 dimensions"),
    (["profile", "lenet7", "--input-shape", "3,32,32,1"], "3 dimensions"),
    (["profile", "lenet7", "--input-shape", "a,b,c"], "--input-shape"),
    (["profile", "lenet7", "--input-shape", "0,32,32"], "--input-shape"),
    (["profile", "lenet7", "--input-shape", "-3,32,32"], "--input-shape"),
    (["profile", "lenet7", "--input-shape", "1,32,32", "--no-latency"], "does not run on input shape"),
    # profile: weights and options
    (["profile", "lenet7", "--weights", "nosuch.pt"], "--weights"),
    (["profile", "lenet7", "--weights", "garbage.json"], "--weights"),
    (["profile", "lenet7", "--weights", "ResNet18_Weights.NOPE"], "--weights"),
    (["profile", "lenet7", "--repeats", "0"], "--repeats"),
    (["profile", "lenet7", "--warmup", "-1"], "--warmup"),
    (["profile", "lenet7", "--threads", "0"], "--threads"),
    (["profile", "lenet7", "--device", "tpu"], "--device"),
    (["profile", "lenet7", "--format", "xml"], "--format"),
    # profile: where it writes
    (["profile", "lenet7", "--no-latency", "--format", "csv", "--out", "t.json"], "csv"),
    (["profile", "lenet7", "--no-latency", "--format", "json", "--out", "t.csv"], "json"),
    (["profile", "lenet7", "--no-latency", "--format", "table", "--out", "t.csv"], "table"),
    (["profile", "lenet7", "--no-latency", "--out", "plain/t.json"], "plain is a file"),
    (["profile", "lenet7", "--no-latency", "--out", "empty"], "is a folder"),
    (["profile", "lenet7", "--no-latency", "--out", "/proc/splitpriv/t.json"], "cannot write"),
    (["profile", "--all", "--no-latency", "--out", "plain"], "folder"),
    (["profile", "--all", "--no-latency", "--out", "/proc/splitpriv"], "cannot write"),
    # leakage
    (["leakage"], "--model"),
    (["leakage", "--model", "nosuchmodel"], "unknown model"),
    (["leakage", "--model", "lenet7", "--profile", "lenet7.json", "--seed", "-3"], "--seed"),
    (["leakage", "--model", "lenet7", "--profile", "lenet7.json", "--layers", "x"], "--layers"),
    (["leakage", "--model", "lenet7", "--profile", "lenet7.json", "--layers", "0"], "--layers"),
    (["leakage", "--model", "lenet7", "--profile", "lenet7.json", "--layers", "99"], "--layers"),
    (["leakage", "--model", "lenet7", "--profile", "lenet7.json", "--budget", "huge"], "--budget"),
    (["leakage", "--model", "lenet7", "--profile", "lenet7.json", "--image-size", "4"], "--image-size"),
    (["leakage", "--model", "lenet7", "--profile", "lenet7.json", "--image-size", "64"], "--image-size"),
    (["leakage", "--model", "lenet7", "--profile", "lenet7.json", "--threads", "0"], "--threads"),
    (["leakage", "--model", "lenet7", "--profile", "lenet7.json", "--precision", "fp16"], "--precision"),
    (["leakage", "--model", "lenet7", "--profile", "lenet7.json", "--loss", "huber"], "--loss"),
    (["leakage", "--model", "lenet7", "--profile", "lenet7.json", "--data", "empty", "--dataset", "cifar10"],
     "not both"),
    (["leakage", "--model", "lenet7", "--profile", "lenet7.json", "--data", "nosuchdir"], "nosuchdir"),
    (["leakage", "--model", "lenet7", "--profile", "lenet7.json", "--data", "empty"], "empty"),
    (["leakage", "--model", "lenet7", "--profile", "lenet7.json", "--dataset", "cifar10"], "cifar10"),
    (["leakage", "--model", "lenet7", "--profile", "nosuch.json"], "nosuch.json"),
    (["leakage", "--model", "lenet7", "--profile", "garbage.json"], "garbage.json"),
    (["leakage", "--model", "lenet9", "--profile", "lenet7.json"], "lenet7.json"),
    (["leakage", "--model", "lenet7", "--profile", "lenet7.json", "--out", "plain"], "plain is a file"),
    (["leakage", "--model", "lenet7", "--profile", "lenet7.json", "--out", "/proc/splitpriv"], "cannot write"),
    (["leakage", "--model", "lenet7", "--profile", "lenet7.json", "--weights", "nosuch.pt"], "--weights"),
    # --- leakage, issue #21 item 5 (helper astyped): bounds and malformed --layers ---------------------
    (["leakage", "--model", "lenet7", "--profile", "lenet7.json", "--seed", "99999999999999999999999"], "--seed"),
    (["leakage", "--model", "lenet7", "--profile", "lenet7.json", "--seed", str(2**32)], "--seed"),
    (["leakage", "--model", "lenet7", "--profile", "lenet7.json", "--layers", ""], "is empty"),
    (["leakage", "--model", "lenet7", "--profile", "lenet7.json", "--layers", "1,,4"], "empty item"),
    (["leakage", "--model", "lenet7", "--profile", "lenet7.json", "--layers", "1,1"], "given twice"),
    (["leakage", "--model", "lenet7", "--profile", "lenet7.json", "--image-size", "10000"], "--image-size"),
    (["leakage", "--model", "lenet7", "--profile", "lenet7.json", "--image-size", "1025"], "--image-size"),
    # --- end of astyped's block ---------------------------------------------------------------------------
    # leakage-sets
    (["leakage-sets"], "TABLE"),
    (["leakage-sets", "nosuch.json"], "nosuch.json"),
    (["leakage-sets", "garbage.json"], "garbage.json"),
    (["leakage-sets", "empty"], "empty"),
    (["leakage-sets", "lenet7.json", "--activate", "zz"], "--activate zz"),
    # evaluate
    (EVALUATE + ["--policy", "nosuch"], "--policy"),
    (["evaluate", "--profiles", "nosuchdir"], "nosuchdir"),
    (["evaluate", "--profiles", "empty"], "empty"),
    (["evaluate", "--profiles", "plain"], "plain"),
    (EVALUATE + ["--episodes", "0"], "episodes"),
    (EVALUATE + ["--episodes", "-1"], "episodes"),
    (EVALUATE + ["--slots", "0"], "slots"),
    (EVALUATE + ["--num-envs", "0"], "num"),
    (EVALUATE + ["--seed", "-1"], "seed"),
    (EVALUATE + ["--threads", "0"], "--threads"),
    (EVALUATE + ["--set", "nosuch=1"], "nosuch"),
    (EVALUATE + ["--set", "env.num_users=abc"], "env.num_users"),
    (EVALUATE + ["--set", "noequals"], "noequals"),
    (EVALUATE + ["--config", "nosuch.yaml"], "nosuch.yaml"),
    (EVALUATE + ["--config", "bad.yaml"], "bad.yaml"),
    (EVALUATE + ["--checkpoint", "nosuchrun"], "nosuchrun"),
    (EVALUATE + ["--checkpoint", "garbage.json"], "garbage.json"),
    (["evaluate", "--policy", "none"], "--checkpoint"),
    (EVALUATE + ["--out", "r.txt"], ".json or .csv"),
    (EVALUATE + ["--out", "plain/r.json"], "plain is a file"),
    (EVALUATE + ["--out", "empty"], "empty"),
    (EVALUATE + ["--out", "/proc/splitpriv/r.json"], "cannot write"),
    # train
    (TRAIN + ["--algo", "nosuch"], "--algo"),
    (TRAIN + ["--iterations", "0"], "iterations"),
    (TRAIN + ["--iterations", "-1"], "iterations"),
    (TRAIN + ["--num-envs", "0"], "num"),
    (TRAIN + ["--seed", "-1"], "seed"),
    (TRAIN + ["--threads", "0"], "--threads"),
    (TRAIN + ["--precision", "fp16"], "--precision"),
    (TRAIN + ["--set", "lr=abc"], "lr"),
    (TRAIN + ["--set", "nosuch=1"], "nosuch"),
    (TRAIN + ["--set", "env.nosuch=1"], "env.nosuch"),
    (["train", "--profiles", "nosuchdir", "--out", "run"], "nosuchdir"),
    (["train", "--profiles", "empty", "--out", "run"], "empty"),
    (TRAIN + ["--out", "/proc/splitpriv"], "cannot write"),
    (TRAIN + ["--out", "plain/run"], "plain is a file"),
    (TRAIN + ["--out", "plain"], "plain"),
    (TRAIN + ["--out", "nosuchrun", "--resume"], "nosuchrun"),
    (TRAIN + ["--device", "tpu"], "--device"),
]

# ---- issue 21, item 5 (helper "escapes"): profile / train / evaluate escapes -----------------------------
# Non-finite numbers where --set expects one (nan, inf, YAML .inf, an overflowing 1e400): refused before the
# run directory, config.json or metrics.csv exist.
CASES += [(TRAIN + ["--set", value], "finite") for value in
          ("lr=nan", "lr=inf", "lr=.inf", "lr=-.inf", "lr=1e400", "clip=nan", "lambda_init=inf",
           "env.cost.mu1=nan", "env.area_m=.inf", "env.capacity.user_flops=[1e9, .inf]")]
CASES += [(EVALUATE + ["--set", "env.cost.delay_limit_s=nan"], "finite")]
CPUS_PLUS_ONE = str(available_cpus() + 1)
CASES += [
    # counts that would hang the tool, threads beyond the CPUs (torch's misleading allocation error before)
    (["profile", "lenet7", "--warmup", "99999999999999999999"], "--warmup"),
    (["profile", "lenet7", "--warmup", "1001"], "--warmup"),
    (["profile", "lenet7", "--repeats", "99999999999999999999"], "--repeats"),
    (["profile", "lenet7", "--repeats", "1001"], "--repeats"),
    (["profile", "lenet7", "--threads", "100000"], "--threads 100000"),
    (["profile", "lenet7", "--threads", CPUS_PLUS_ONE], f"--threads {CPUS_PLUS_ONE}"),
    (TRAIN + ["--threads", "100000"], "--threads 100000"),
    (EVALUATE + ["--threads", "100000"], "--threads 100000"),
    (["leakage", "--model", "lenet7", "--profile", "lenet7.json", "--threads", "100000"], "--threads 100000"),
    # seeds beyond 32 bits overflowed torch after the run folder existed; sizes that would allocate without end
    (TRAIN + ["--seed", "99999999999999999999999"], "--seed"),
    (TRAIN + ["--set", "seed=99999999999"], "config seed: must be at most"),
    (EVALUATE + ["--seed", "99999999999999999999999"], "--seed"),
    (EVALUATE + ["--set", "seed=99999999999"], "config seed: must be at most"),
    (EVALUATE + ["--set", "seed=-500"], "config seed: must be >= 0"),
    (TRAIN + ["--set", "seed=-500"], "'seed' must be >= 0"),
    (TRAIN + ["--set", "env.num_users=10000000000"], "config env.num_users: must be at most"),
    (TRAIN + ["--set", "ppo_epochs=100000000000"], "config ppo_epochs: must be at most"),
    (TRAIN + ["--set", "hidden_user=1000000000"], "config hidden_user: must be at most"),
    (EVALUATE + ["--set", "env.input_batch=[1, 100000]"], "config env.input_batch: must be at most"),
    (EVALUATE + ["--set", "lagrangian_calibration_episodes=1000000000"], "must be at most 10,000"),
    (["evaluate", *TINY, "--policy", "local-only", "--episodes", "99999999999", "--slots", "1"],
     "config episodes: must be at most"),
    # --out: one model's file ends in .json/.csv/.txt; with --all it is a folder, not all.json
    (["profile", "lenet7", "--no-latency", "--out", "t.xyz"], ".json, *.csv or *.txt"),
    (["profile", "lenet7", "--no-latency", "--out", "t"], ".json, *.csv or *.txt"),
    (["profile", "lenet7", "--no-latency", "--format", "csv", "--out", "t.dat"], ".json, *.csv or *.txt"),
    (["profile", "--all", "--no-latency", "--out", "all.json"], "is a folder"),
    (["profile", "--all", "--no-latency", "--out", "all.csv", "--format", "csv"], "is a folder"),
    # a trained run (trained/: J = 2, I = 2 × 5 services) evaluated with other sizes: refused before any episode
    (EVALUATE + ["--checkpoint", "trained", "--set", "env.num_servers=3"], "J servers: 2 in training, 3 here"),
    (EVALUATE + ["--checkpoint", "trained", "--set", "env.services_per_model=2"],
     "I services: 10 in training, 4 here"),
    (EVALUATE + ["--checkpoint", "trained", "--profiles", "onetable"], "I services: 10 in training, 5 here"),
]
# ---- end of the "escapes" block ------------------------------------------------------------------------

if not torch.cuda.is_available():
    CASES += [(["profile", "lenet7", "--device", "cuda"], "--device cuda"),
              (["leakage", "--model", "lenet7", "--profile", "lenet7.json", "--device", "cuda"], "--device cuda"),
              (EVALUATE + ["--device", "cuda"], "--device cuda"),
              (TRAIN + ["--device", "cuda"], "--device cuda")]

NETS = '''
from torch import nn

def tiny():
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())

def not_a_model():
    return 42
'''


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("bad_inputs")
    (folder / "plain").write_text("x")
    (folder / "empty").mkdir()
    shutil.copytree(FIXTURES, folder / "fixtures")
    shutil.copy(ROOT / "data" / "profiles" / "lenet7.json", folder / "lenet7.json")
    (folder / "garbage.json").write_text("{ not json")
    (folder / "bad.yaml").write_text("a: [unclosed\n")
    (folder / "nets.py").write_text(NETS)
    (folder / "onetable").mkdir()
    shutil.copy(FIXTURES / "tiny_a.json", folder / "onetable" / "tiny_a.json")
    _train_tiny_run(folder)
    return folder


#: A run small enough to train in about a second: J = 2, K = 3, I = 2 tables × 5 services, 4-slot episodes.
TINY_RUN = [*TINY, "--iterations", "1", "--quiet", "--set", "num_envs=1", "--set", "rollout_slots=2",
            "--set", "env.slots_per_episode=4", "--set", "env.delta_t=2", "--set", "hidden_user=8",
            "--set", "hidden_deployment=8", "--set", "hidden_allocation=8", "--set", "tensorboard=false"]


def _train_tiny_run(folder: Path) -> None:
    """``folder/trained``: the trained run the evaluate --checkpoint cases refuse to mix with other sizes."""
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(folder)
        threads = torch.get_num_threads()
        try:
            result = CliRunner().invoke(main, ["train", *TINY_RUN, "--out", "trained"])
        finally:
            torch.set_num_threads(threads)
    assert result.exit_code == 0, result.output


def _snapshot(folder: Path) -> dict[str, tuple[int, str]]:
    """Every file and folder under ``folder`` (``__pycache__`` aside): relative path → (size, sha256)."""
    snap = {}
    for path in sorted(folder.rglob("*")):
        if "__pycache__" in path.parts:
            continue
        rel = str(path.relative_to(folder))
        snap[rel] = (-1, "dir") if path.is_dir() else (path.stat().st_size,
                                                       hashlib.sha256(path.read_bytes()).hexdigest())
    return snap


def _case_id(args: list[str]) -> str:
    for prefix, name in ((EVALUATE, "evaluate"), (TRAIN, "train")):
        if args[:len(prefix)] == prefix:
            return " ".join([name, "…", *args[len(prefix):]])
    return " ".join(args)


@pytest.mark.parametrize("args, word", CASES, ids=[_case_id(a) for a, _ in CASES])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(scratch, monkeypatch, args, word):
    monkeypatch.chdir(scratch)
    monkeypatch.syspath_prepend(str(scratch))
    before = _snapshot(scratch)
    threads = torch.get_num_threads()
    try:
        result = CliRunner().invoke(main, args)
    finally:
        torch.set_num_threads(threads)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.output
    assert word.lower() in lines[0].lower(), lines[0]
    assert _snapshot(scratch) == before
