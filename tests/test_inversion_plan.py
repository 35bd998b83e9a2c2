"""`leakage` as typed: defaults from the table's active set (else the 64-px rule), the timed plan line, and
nothing written before a split is measured (issue #21, item 2)."""

import json
import textwrap

import pytest
import torch
from click.testing import CliRunner

import inversion.config
import inversion.run
from cli import main
from inversion.plan import Plan, _pass_fractions, resolve_defaults
from usermodels import profiled_user_model

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py

TINY = textwrap.dedent('''
    from torch import nn

    def tiny():
        return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, stride=2, padding=1),
                             nn.ReLU(), nn.Flatten(), nn.Linear(8 * 8 * 8, 10))
    tiny.input_shape = (3, 16, 16)

    def conv():
        return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),
                             nn.AdaptiveAvgPool2d(1), nn.Flatten())
    conv.input_shape = (3, 16, 16)
''')
SPEC = "inv_plan_tiny:tiny"


def _table(measured: bool, image_size: int = 64, budget: str = "quick") -> dict:
    leak = {"ssim": 0.5, "measured": True} if measured else None
    return {"splits": [{"leakage": None}, {"leakage": leak}, {"leakage": None}],
            "leakage_meta": {"image_size": image_size, "budget": budget} if measured else None}


# --- defaults -------------------------------------------------------------------------------------------

def test_defaults_come_from_the_active_set_and_are_named():
    d = resolve_defaults(None, None, _table(True, 64, "quick"), 224, "data/profiles/resnet50.json")
    assert (d.image_size, d.budget) == (64, "quick")
    assert d.line == ("using 64 px and the quick budget (400 steps × 64 images; 2048 auxiliary / 256 held-out "
                      "images), from the active set of data/profiles/resnet50.json; --image-size/--budget to change")
    d = resolve_defaults(None, None, _table(True, 48, "standard"), 224, "t.json")
    assert (d.image_size, d.budget) == (48, "standard") and "1600 steps" in d.line


def test_a_table_with_no_measured_set_uses_the_stated_rule():
    d = resolve_defaults(None, None, _table(False), 224, "t.json")
    assert (d.image_size, d.budget) == (64, "quick")
    assert "no measured set: 64 px, not the native 224 px" in d.line and "(the default)" in d.line
    d = resolve_defaults(None, None, _table(False), 32, "t.json")          # a native size below the cap
    assert d.image_size == 32 and "the native 32 px" in d.line


def test_given_options_win_and_a_smoke_set_is_never_a_default():
    d = resolve_defaults(224, "standard", _table(True, 64, "quick"), 224, "t.json")
    assert (d.image_size, d.budget) == (224, "standard")
    assert "(--image-size)" in d.line and "(--budget)" in d.line and "to change" not in d.line
    d = resolve_defaults(None, None, _table(True, 16, "smoke"), 224, "t.json")   # a wiring check: the rule
    assert (d.image_size, d.budget) == (64, "quick") and "no measured set" in d.line
    d = resolve_defaults(None, "smoke", _table(True, 48, "quick"), 224, "t.json")
    assert (d.image_size, d.budget) == (48, "smoke") and d.line.endswith("(--budget); --image-size to change")


# --- the plan -------------------------------------------------------------------------------------------

def test_plan_total_and_warning_by_hand():
    # 60 s of caching + 17 splits × 400 steps × 0.5 s = 3460 s: under an hour, no warning
    plan = Plan(splits=17, steps=400, caching_s=60.0, step_s=0.5, per_split_s=200.0, probed=(1, 17))
    assert plan.total_s == pytest.approx(3460.0)
    assert plan.warning(64, "quick", torch.device("cpu")) is None
    slow = Plan(17, 400, 60.0, 0.6, 240.0, (1, 17))                  # 60 + 17 × 240 = 4140 s
    warning = slow.warning(224, "quick", torch.device("cpu"))
    assert warning.startswith("warning: this run takes more than an hour")
    assert "--layers with 3 split points (≈ 13 min)" in warning          # 60 + 3 × 240 = 780 s
    assert "--image-size 64 (≈ 8% of the pixels" in warning            # 64² / 224² = 0.0816
    assert "--budget smoke" in warning and "--device cuda" in warning
    assert "≈ 69 min" in slow.line(torch.device("cpu"), 1) and "1 thread)" in slow.line(torch.device("cpu"), 1)


def test_caching_passes_are_weighted_by_the_macs_they_run():
    # passes to unit 2 and unit 3 of units costing 10, 20, 30 MACs: 30/60 and 60/60 of a full pass
    assert _pass_fractions([[1, 2], [3]], [10, 20, 30]) == [0.5, 1.0]
    assert _pass_fractions([[1, 2], [3]], None) == [1.0, 1.0]


# --- end to end on a tiny model -----------------------------------------------------------------------

@pytest.fixture
def env(tmp_path, monkeypatch):
    return profiled_user_model(tmp_path, monkeypatch, "inv_plan_tiny", TINY, SPEC)   # tests/usermodels.py


@pytest.fixture
def tiny_quick(monkeypatch):
    """The quick budget shrunk to smoke size: a real (non-smoke) budget whose sets may become active."""
    monkeypatch.setitem(inversion.config.BUDGETS, "quick", inversion.config.Budget("quick", 64, 16, 10))


def leakage(profile, out, *extra):
    return CliRunner().invoke(main, ["leakage", "--model", SPEC, "--profile", str(profile), "--out", str(out),
                                     *extra])


def test_as_typed_names_its_settings_and_plan_in_the_first_lines(env, tiny_quick):
    tmp, profile = env
    result = leakage(profile, tmp / "run")
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines[1] == ("using 16 px (no measured set: the native 16 px) and the quick budget (10 steps × 64 "
                        "images; 64 auxiliary / 16 held-out images) (the default); --image-size/--budget to change")
    assert lines[2].startswith("plan: 2 splits × 10 decoder steps ≈ ") and "timed at splits 1 and 2" in lines[2]
    table = json.loads(profile.read_text())
    assert table["leakage_meta"]["image_size"] == 16 and table["leakage_meta"]["budget"] == "quick"
    again = leakage(profile, tmp / "run", "--redo", "--layers", "1")       # now from the table's active set
    assert again.exit_code == 0, again.output
    assert f"using 16 px and the quick budget (10 steps × 64 images; 64 auxiliary / 16 held-out images), from " \
           f"the active set of {profile}; --image-size/--budget to change" in again.stderr


def test_the_probe_changes_no_value(env, tiny_quick, monkeypatch):
    tmp, profile = env
    assert leakage(profile, tmp / "a").exit_code == 0
    with_probe = json.loads((tmp / "a" / "results.json").read_text())["splits"]
    monkeypatch.setattr(inversion.run, "measure_plan", lambda *args, **kwargs: None)
    result = leakage(profile, tmp / "b", "--redo")
    assert result.exit_code == 0 and "plan:" not in result.stderr
    without = json.loads((tmp / "b" / "results.json").read_text())["splits"]
    assert [with_probe[z]["ssim_per_image"] for z in "12"] == [without[z]["ssim_per_image"] for z in "12"]


def _snapshot(folder):
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and "__pycache__" not in p.parts}


@pytest.mark.parametrize("failure, code", [(KeyboardInterrupt, 130), (RuntimeError("decoder exploded"), 1)])
def test_a_run_stopped_in_its_first_split_writes_nothing(env, tiny_quick, monkeypatch, failure, code):
    tmp, profile = env
    assert leakage(profile, tmp / "run", "--budget", "smoke").exit_code == 0     # a results file to keep
    before = _snapshot(tmp)

    def fail(*args, **kwargs):
        raise failure

    monkeypatch.setattr(inversion.run, "attack_split", fail)
    result = leakage(profile, tmp / "run")                     # other settings: would archive the results file
    assert result.exit_code == code, result.output
    assert _snapshot(tmp) == before                            # table byte-identical, results folder untouched
    fresh = leakage(profile, tmp / "new_run")
    assert fresh.exit_code == code and not (tmp / "new_run").exists() and _snapshot(tmp) == before


def test_nothing_to_do_leaves_the_table_byte_identical(env, tiny_quick):
    tmp, profile = env
    assert leakage(profile, tmp / "run").exit_code == 0
    before = profile.read_bytes()
    again = leakage(profile, tmp / "other")
    assert again.exit_code == 0 and "to do []" in again.stderr and "plan:" not in again.stderr
    assert profile.read_bytes() == before and (tmp / "other" / "results.json").is_file()


def test_an_image_size_whose_features_cannot_fit_is_refused(env):
    tmp, _ = env
    profile = tmp / "conv.json"
    spec = "inv_plan_tiny:conv"               # runs at any size
    made = CliRunner().invoke(main, ["profile", spec, "--format", "json", "--out", str(profile), "--no-latency"])
    assert made.exit_code == 0, made.output
    before = profile.read_bytes()
    # 9,216 images × (8 × 1024² bf16 features + 2 × 3 × 1024² float inputs) ≈ 370 GiB: above half of any RAM here
    result = CliRunner().invoke(main, ["leakage", "--model", spec, "--profile", str(profile), "--out",
                                       str(tmp / "run"), "--image-size", "1024", "--budget", "thorough"])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: --image-size 1024: ") and "GiB" in lines[0]
    assert profile.read_bytes() == before and not (tmp / "run").exists()
