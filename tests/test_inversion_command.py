"""`cli.py leakage` end to end on a tiny model: profile update, resume, interruption, bad input."""

import json
import textwrap

import pytest
import torch
from click.testing import CliRunner

import inversion.config
import inversion.run
from cli import main
from common.files import lock_path
from profiler import table as profile_table
from usermodels import profiled_user_model

TINY = textwrap.dedent('''
    from torch import nn

    def tiny():
        return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, stride=2, padding=1),
                             nn.ReLU(), nn.Flatten(), nn.Linear(8 * 8 * 8, 10))
    tiny.input_shape = (3, 16, 16)
''')
SPEC = "inv_tiny_model:tiny"


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py


@pytest.fixture
def env(tmp_path, monkeypatch):
    return profiled_user_model(tmp_path, monkeypatch, "inv_tiny_model", TINY, SPEC)   # tests/usermodels.py


def leakage(profile, out, *extra, budget="smoke"):
    args = ["leakage", "--model", SPEC, "--budget", budget, "--profile", str(profile), "--out", str(out), *extra]
    return CliRunner().invoke(main, args)


@pytest.fixture
def tiny_quick(monkeypatch):
    """The quick budget shrunk to smoke size: a real (non-smoke) budget whose sets may become active."""
    monkeypatch.setitem(inversion.config.BUDGETS, "quick", inversion.config.Budget("quick", 64, 16, 10))


def _ssims(table):
    return [None if s["leakage"] is None else s["leakage"]["ssim"] for s in table["splits"]]


def test_writes_leakage_resumes_and_redoes(env, tiny_quick):
    tmp, profile = env
    costs_before = [{k: v for k, v in s.items() if k != "leakage"} for s in json.loads(profile.read_text())["splits"]]
    out = tmp / "run"
    first = leakage(profile, out, "--layers", "1", budget="quick")
    assert first.exit_code == 0, first.output
    table = profile_table.read(profile)
    assert [s["leakage"] is None for s in table["splits"]] == [False, False, True, False]
    assert table["splits"][0]["leakage"] == {"ssim": 1.0, "ssim_ci95": [1.0, 1.0], "psnr": None,
                                             "psnr_ci95": [None, None], "measured": False}
    assert table["splits"][3]["leakage"]["ssim"] == 0.0 and not table["splits"][3]["leakage"]["measured"]
    assert table["splits"][1]["leakage"]["measured"]
    assert table["leakage_meta"]["budget"] == "quick" and table["leakage_meta"]["floor"]["ssim"]["n"] == 16
    assert not table["leakage_meta"]["complete"]
    assert len(table["splits"][1]["leakage"]["ssim_per_image"].split()) == 16
    assert table["splits"][1]["leakage"]["convergence"]["steps"][-1] == 10
    assert [{k: v for k, v in s.items() if k != "leakage"} for s in table["splits"]] == costs_before
    date_1 = json.loads((out / "results.json").read_text())["splits"]["1"]["date"]

    second = leakage(profile, out, budget="quick")  # all splits: 1 is kept, 2 is computed
    assert second.exit_code == 0, second.output
    assert "resumed from the table (active set) and the results file; to do [2]" in second.output
    # progress: features cached with a bar, split 2 is the 1st of 1 to do, one overall bar over all steps
    assert "caching features of splits 2" in second.stderr and "split 2 (1/1)" in second.stderr
    assert "inv_tiny_model:tiny: 1 splits" in second.stderr and "split 2/3" not in second.stderr
    results = json.loads((out / "results.json").read_text())
    assert results["splits"]["1"]["date"] == date_1 and set(results["splits"]) == {"1", "2"}
    assert (out / "ssim_vs_split.png").stat().st_size > 0 and (out / "reconstructions.png").stat().st_size > 0
    assert profile_table.read(profile)["leakage_meta"]["complete"]

    third = leakage(profile, out, "--redo", "--layers", "2", budget="quick")
    assert third.exit_code == 0 and "redo [2]; to do [2]" in third.output


def test_subset_with_the_same_settings_keeps_the_other_splits(env, tiny_quick):
    tmp, profile = env
    assert leakage(profile, tmp / "run", budget="quick").exit_code == 0
    before = _ssims(profile_table.read(profile))
    again = leakage(profile, tmp / "run", "--layers", "1", "--redo", budget="quick")
    assert again.exit_code == 0, again.output
    after = _ssims(profile_table.read(profile))
    assert after[2] == before[2] and after[1] is not None


def test_other_settings_never_remove_values_and_switch_only_when_complete(env, tiny_quick):
    tmp, profile = env
    assert leakage(profile, tmp / "run", budget="quick").exit_code == 0
    seed0 = profile_table.read(profile)
    values0 = _ssims(seed0)

    partial = leakage(profile, tmp / "run", "--seed", "1", "--layers", "2", budget="quick")
    assert partial.exit_code == 0, partial.output
    assert "(partial set)" in partial.output and "leakage_history" in partial.output
    table = profile_table.read(profile)
    assert _ssims(table) == values0 and table["leakage_meta"]["seed"] == 0      # the active set is untouched
    (pending,) = table["leakage_history"]
    assert pending["status"] == "partial" and set(pending["splits"]) == {"2"} and pending["meta"]["seed"] == 1
    archived = list((tmp / "run" / "previous").glob("*/results.json"))
    assert len(archived) == 1 and set(json.loads(archived[0].read_text())["splits"]) == {"1", "2"}

    smoke = leakage(profile, tmp / "run", "--seed", "1")                    # complete, but smoke: kept aside
    assert smoke.exit_code == 0 and _ssims(profile_table.read(profile)) == values0

    done = leakage(profile, tmp / "run", "--seed", "1", "--layers", "1", budget="quick")   # completes: switches
    assert done.exit_code == 0, done.output
    assert "to do [1]" in done.output
    table = profile_table.read(profile)
    assert table["leakage_meta"]["seed"] == 1 and table["leakage_meta"]["complete"]
    assert _ssims(table)[2] == pending["splits"]["2"]["ssim"]
    replaced, smoke_set = table["leakage_history"]
    assert replaced["status"] == "replaced" and replaced["meta"]["seed"] == 0
    assert smoke_set["status"] == "partial" and smoke_set["meta"]["budget"] == "smoke"
    assert [replaced["splits"][str(z)]["ssim"] for z in (1, 2)] == values0[1:3]


def test_force_switches_at_once_and_keeps_the_previous_set(env, tiny_quick):
    tmp, profile = env
    assert leakage(profile, tmp / "run", budget="quick").exit_code == 0
    values0 = _ssims(profile_table.read(profile))
    forced = leakage(profile, tmp / "run", "--seed", "3", "--layers", "2", "--force")
    assert forced.exit_code == 0, forced.output
    table = profile_table.read(profile)
    assert table["leakage_meta"]["seed"] == 3 and not table["leakage_meta"]["complete"]
    assert table["splits"][1]["leakage"] is None and table["splits"][2]["leakage"]["measured"]
    assert [table["leakage_history"][0]["splits"][str(z)]["ssim"] for z in (1, 2)] == values0[1:3]


def test_returning_to_earlier_settings_resumes_from_the_replaced_set(env, tiny_quick):
    tmp, profile = env
    assert leakage(profile, tmp / "a", budget="quick").exit_code == 0
    values_a = _ssims(profile_table.read(profile))
    assert leakage(profile, tmp / "b", "--seed", "1", budget="quick").exit_code == 0
    values_b = _ssims(profile_table.read(profile))
    back = leakage(profile, tmp / "c", budget="quick")
    assert back.exit_code == 0, back.output
    assert "resumed from the table (replaced set); to do []" in back.output
    table = profile_table.read(profile)
    assert _ssims(table) == values_a and table["leakage_meta"]["seed"] == 0
    (kept,) = table["leakage_history"]
    assert kept["meta"]["seed"] == 1 and [kept["splits"][str(z)]["ssim"] for z in (1, 2)] == values_b[1:3]


def test_resumes_from_the_table_alone(env, tiny_quick):
    tmp, profile = env
    assert leakage(profile, tmp / "run_a", budget="quick").exit_code == 0
    values = _ssims(profile_table.read(profile))
    again = leakage(profile, tmp / "run_b", budget="quick")     # a new results folder: the table suffices
    assert again.exit_code == 0, again.output
    assert "resumed from the table (active set); to do []" in again.output
    assert _ssims(profile_table.read(profile)) == values
    assert (tmp / "run_b" / "ssim_vs_split.png").is_file()


def test_interruption_keeps_finished_splits_and_earlier_sets(env, monkeypatch):
    tmp, profile = env
    assert leakage(profile, tmp / "run").exit_code == 0
    values0 = _ssims(profile_table.read(profile))
    real = inversion.run.attack_split
    calls = []

    def attack_then_interrupt(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(inversion.run, "attack_split", attack_then_interrupt)
    result = leakage(profile, tmp / "run", "--seed", "1")
    assert result.exit_code == 130
    table = profile_table.read(profile)
    assert _ssims(table) == values0
    assert set(table["leakage_history"][0]["splits"]) == {"1"}
    assert set(json.loads((tmp / "run" / "results.json").read_text())["splits"]) == {"1"}


def test_an_error_mid_run_keeps_values(env, monkeypatch):
    tmp, profile = env
    assert leakage(profile, tmp / "run", "--layers", "1").exit_code == 0
    before = _ssims(profile_table.read(profile))

    def broken(*args, **kwargs):
        raise RuntimeError("decoder exploded")

    monkeypatch.setattr(inversion.run, "attack_split", broken)
    result = leakage(profile, tmp / "run", "--layers", "2")
    assert result.exit_code != 0
    assert _ssims(profile_table.read(profile)) == before
    assert set(json.loads((tmp / "run" / "results.json").read_text())["splits"]) == {"1"}


def test_interrupted_profile_write_leaves_previous_json(env, monkeypatch):
    tmp, profile = env
    before = profile.read_bytes()

    def dump_half_then_die(obj, fh, **kwargs):
        fh.write('{"schema_version": 1, "mod')
        raise KeyboardInterrupt

    monkeypatch.setattr(profile_table.json, "dump", dump_half_then_die)
    result = leakage(profile, tmp / "run", "--layers", "1")
    assert result.exit_code == 130
    assert profile.read_bytes() == before
    assert not [p for p in profile.parent.iterdir()                  # no temporary file (the lock sidecar stays)
                if p.name.startswith(".tiny.json") and p.name != lock_path(profile).name]


def test_user_model_tables_default_to_their_own_folder(env, tiny_quick):
    tmp, _ = env
    refused = CliRunner().invoke(main, ["leakage", "--model", SPEC, "--budget", "smoke"])
    _assert_refused(refused, "profiles/inv_tiny_model.tiny.json", "profile --model inv_tiny_model:tiny",
                    "outside data/profiles/")
    made = CliRunner().invoke(main, ["profile", "--model", SPEC, "--format", "json", "--no-latency",
                                     "--out", "profiles/inv_tiny_model.tiny.json"])
    assert made.exit_code == 0, made.output
    ran = CliRunner().invoke(main, ["leakage", "--model", SPEC, "--budget", "quick", "--layers", "1"])
    assert ran.exit_code == 0, ran.output
    assert profile_table.read(tmp / "profiles" / "inv_tiny_model.tiny.json")["splits"][1]["leakage"]["measured"]
    assert (tmp / "runs" / "leakage" / "inv_tiny_model.tiny" / "results.json").is_file()
    assert not (tmp / "data").exists()


GRAY = textwrap.dedent('''
    from torch import nn

    def gray():
        return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 16 * 16, 10))
    gray.input_shape = (1, 16, 16)
''')


def test_one_channel_model_measures_gray_images(env, tiny_quick):
    tmp, _ = env
    (tmp / "inv_gray_model.py").write_text(GRAY)
    profile = tmp / "gray.json"
    spec = "inv_gray_model:gray"
    made = CliRunner().invoke(main, ["profile", spec, "--format", "json", "--out", str(profile), "--no-latency"])
    assert made.exit_code == 0, made.output
    ran = CliRunner().invoke(main, ["leakage", "--model", spec, "--budget", "quick", "--profile", str(profile),
                                    "--out", str(tmp / "run")])
    assert ran.exit_code == 0, ran.output
    assert "(gray)" in ran.output
    assert profile_table.read(profile)["splits"][1]["leakage"]["measured"]
    import numpy as np

    assert np.load(tmp / "run" / "samples" / "split_001.npy").shape[-1] == 1


def _assert_refused(result, *words):
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in result.output
    for word in words:
        assert word in lines[0]


@pytest.mark.parametrize("extra, words", [
    (["--layers", "3"], ["--layers 3", "1..2"]),
    (["--layers", "0,1"], ["--layers 0"]),
    (["--layers", "x"], ["--layers"]),
    (["--image-size", "32"], ["cannot run at --image-size 32"]),
    (["--threads", "0"], ["--threads 0"]),
])
def test_bad_options_are_refused_before_any_write(env, extra, words):
    tmp, profile = env
    before = profile.read_bytes()
    _assert_refused(leakage(profile, tmp / "run", *extra), *words)
    assert profile.read_bytes() == before and not (tmp / "run").exists()


def test_bad_data_folders_are_refused(env):
    tmp, profile = env
    empty = tmp / "empty"
    empty.mkdir()
    _assert_refused(leakage(profile, tmp / "run", "--data", str(empty)), "needs at least 2 image files")
    broken = tmp / "broken"
    broken.mkdir()
    (broken / "a.png").write_bytes(b"not a png")
    (broken / "b.png").write_bytes(b"nor this")
    _assert_refused(leakage(profile, tmp / "run", "--data", str(broken)), "cannot read image")
    small = tmp / "small"
    small.mkdir()
    from skimage import io
    import numpy as np

    for name in ("a.png", "b.png"):
        io.imsave(str(small / name), np.zeros((8, 8, 3), dtype=np.uint8), check_contrast=False)
    _assert_refused(leakage(profile, tmp / "run", "--data", str(small)), "smaller than the input size 16x16")
    _assert_refused(leakage(profile, tmp / "run", "--data", str(tmp / "nope")), "no such folder")
    assert not (tmp / "run").exists()


def test_unknown_model_missing_profile_and_missing_gpu(env):
    tmp, profile = env
    runner = CliRunner()
    _assert_refused(runner.invoke(main, ["leakage", "--model", "nosuchnet", "--out", str(tmp / "run")]),
                    "unknown model 'nosuchnet'")
    _assert_refused(runner.invoke(main, ["leakage", "--model", SPEC, "--profile", str(tmp / "none.json"),
                                         "--out", str(tmp / "run")]), "run `python cli.py profile --model")
    if not torch.cuda.is_available():
        _assert_refused(leakage(profile, tmp / "run", "--device", "cuda"), "cuda")
    assert not (tmp / "run").exists()
