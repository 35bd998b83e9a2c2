"""`cli.py leakage` end to end on a tiny model: profile update, resume, interruption, bad input."""

import json
import textwrap

import pytest
import torch
from click.testing import CliRunner

import inversion.run
from cli import main
from profiler import table as profile_table

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
    (tmp_path / "inv_tiny_model.py").write_text(TINY)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    profile = tmp_path / "tiny.json"
    result = CliRunner().invoke(main, ["profile", SPEC, "--format", "json", "--out", str(profile), "--no-latency"])
    assert result.exit_code == 0, result.output
    return tmp_path, profile


def leakage(profile, out, *extra):
    args = ["leakage", "--model", SPEC, "--budget", "smoke", "--profile", str(profile), "--out", str(out), *extra]
    return CliRunner().invoke(main, args)


def test_writes_leakage_resumes_and_forces(env):
    tmp, profile = env
    costs_before = [{k: v for k, v in s.items() if k != "leakage"} for s in json.loads(profile.read_text())["splits"]]
    out = tmp / "run"
    first = leakage(profile, out, "--layers", "1")
    assert first.exit_code == 0, first.output
    table = profile_table.read(profile)
    assert [s["leakage"] is None for s in table["splits"]] == [False, False, True, False]
    assert table["splits"][0]["leakage"] == {"ssim": 1.0, "ssim_ci95": [1.0, 1.0], "psnr": None,
                                             "psnr_ci95": [None, None], "measured": False}
    assert table["splits"][3]["leakage"]["ssim"] == 0.0 and not table["splits"][3]["leakage"]["measured"]
    assert table["splits"][1]["leakage"]["measured"]
    assert table["leakage_meta"]["budget"] == "smoke" and table["leakage_meta"]["floor"]["ssim"]["n"] == 16
    assert [{k: v for k, v in s.items() if k != "leakage"} for s in table["splits"]] == costs_before
    date_1 = json.loads((out / "results.json").read_text())["splits"]["1"]["date"]

    second = leakage(profile, out)                  # all splits: 1 is kept, 2 is computed
    assert second.exit_code == 0, second.output
    assert "resumed; to do [2]" in second.output
    # progress: features cached with a bar, split 2 is the 1st of 1 to do, one overall bar over all steps
    assert "caching features of splits 2" in second.stderr and "split 2 (1/1)" in second.stderr
    assert "inv_tiny_model:tiny: 1 splits" in second.stderr and "split 2/3" not in second.stderr
    results = json.loads((out / "results.json").read_text())
    assert results["splits"]["1"]["date"] == date_1 and set(results["splits"]) == {"1", "2"}
    assert (out / "ssim_vs_split.png").stat().st_size > 0 and (out / "reconstructions.png").stat().st_size > 0

    third = leakage(profile, out, "--force", "--layers", "2")
    assert "recomputed (--force); to do [2]" in third.output
    changed = leakage(profile, out, "--seed", "1", "--layers", "2")
    assert "recomputed (settings changed)" in changed.output
    assert profile_table.read(profile)["splits"][1]["leakage"] is None   # other settings: not mixed in


def test_interruption_keeps_finished_splits(env, monkeypatch):
    tmp, profile = env
    real = inversion.run.attack_split
    calls = []

    def attack_then_interrupt(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(inversion.run, "attack_split", attack_then_interrupt)
    result = leakage(profile, tmp / "run")
    assert result.exit_code == 130
    table = profile_table.read(profile)
    assert table["splits"][1]["leakage"]["measured"] and table["splits"][2]["leakage"] is None
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
    assert not [p for p in profile.parent.iterdir() if p.name.startswith(".tiny.json")]


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
                                         "--out", str(tmp / "run")]), "run `python cli.py profile")
    if not torch.cuda.is_available():
        _assert_refused(leakage(profile, tmp / "run", "--device", "cuda"), "cuda")
    assert not (tmp / "run").exists()
