"""Leakage keyed by what was measured (issue 21, item 3): the four cases a user measured, and the smoke rule.

- a weights file overwritten with zeros is measured again, not resumed;
- an edited factory gives another key (forward or init edited; a comment does not);
- ``--precision fp32`` on a bf16 table measures into its own set and does not relabel the table;
- ``--redo`` keeps the value it replaces in ``leakage_history``;
- two processes writing disjoint splits of one table lose nothing;
- a smoke run on a table without leakage does not become the active set.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import multiprocessing
import shutil
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

import inversion.config
from cli import main
from common.errors import UserInputError
from inversion import leakage_sets, store
from inversion.config import LeakageSettings
from inversion.identity import VictimIdentity, victim_identity
from profiler import table as profile_table
from profiler.zoo import load_model

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py

ROOT = Path(__file__).resolve().parents[1]
TINY = textwrap.dedent('''
    import torch
    from torch import nn

    class Tiny(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
            self.conv2 = nn.Conv2d(8, 8, 3, stride=2, padding=1)
            self.fc = nn.Linear(8 * 8 * 8, 10)

        def forward(self, x):
            x = torch.relu(self.conv1(x))
            x = torch.relu(self.conv2(x))
            return self.fc(torch.flatten(x, 1))

    def tiny():
        return Tiny()
    tiny.input_shape = (3, 16, 16)
''')


@pytest.fixture
def tiny_env(tmp_path, monkeypatch):
    """A user model ``keys_tiny:tiny`` in tmp_path, its profile table, and the quick budget at smoke size
    (a real budget whose sets may become active)."""
    (tmp_path / "keys_tiny.py").write_text(TINY)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    monkeypatch.setitem(inversion.config.BUDGETS, "quick", inversion.config.Budget("quick", 64, 16, 10))
    profile = tmp_path / "tiny.json"
    made = CliRunner().invoke(main, ["profile", "keys_tiny:tiny", "--format", "json", "--out", str(profile),
                                     "--no-latency"])
    assert made.exit_code == 0, made.output
    yield tmp_path, profile
    sys.modules.pop("keys_tiny", None)


def leakage(profile: Path, out: Path, *extra: str, budget: str = "quick"):
    return CliRunner().invoke(main, ["leakage", "--model", "keys_tiny:tiny", "--budget", budget, "--profile",
                                     str(profile), "--out", str(out), *extra])


def _inner(table: dict) -> dict[int, float | None]:
    return {z: (s["leakage"] or {}).get("ssim") for z, s in enumerate(table["splits"][1:-1], start=1)}


def test_a_weights_file_overwritten_with_zeros_is_measured_again(tiny_env):
    tmp, profile = tiny_env
    weights = tmp / "w.pt"
    torch.save(load_model("keys_tiny:tiny").model.state_dict(), weights)
    first = leakage(profile, tmp / "run", "--weights", str(weights))
    assert first.exit_code == 0, first.output
    before = profile_table.read(profile)
    values = _inner(before)
    assert None not in values.values()

    zeros = {k: torch.zeros_like(v) for k, v in torch.load(weights, weights_only=True).items()}
    torch.save(zeros, weights)                               # same label, other contents
    again = leakage(profile, tmp / "run", "--weights", str(weights))
    assert again.exit_code == 0, again.output
    assert "; new; to do [1, 2];" in again.output             # not "resumed … to do []"
    after = profile_table.read(profile)
    meta = after["leakage_meta"]
    assert meta["weights"] == before["leakage_meta"]["weights"] == str(weights)
    assert meta["victim"]["weights_sha256"] != before["leakage_meta"]["victim"]["weights_sha256"]
    assert meta["victim"]["structure_sha256"] == before["leakage_meta"]["victim"]["structure_sha256"]
    (old,) = after["leakage_history"]                       # the first set is kept, whole
    assert old["status"] == "replaced" and {int(z): v["ssim"] for z, v in old["splits"].items()} == values
    # zero weights and biases send a constant feature: nothing beyond the mean image can be rebuilt
    floor = meta["floor"]["ssim"]["mean"]
    for z, ssim in _inner(after).items():
        assert abs(ssim - floor) < 0.05, (z, ssim, floor)


def _key_of(spec: str) -> str:
    loaded = load_model(spec)
    victim = victim_identity(loaded.model, torch.device("cpu"), bf16=True)
    return LeakageSettings.from_budget(loaded.name, "none", "embedded", 16, "quick", 0, victim=victim).key()


def _edit(tmp: Path, old: str, new: str) -> str:
    path = tmp / "keys_tiny.py"
    text = path.read_text()
    assert text.count(old) == 1
    path.write_text(text.replace(old, new))
    sys.modules.pop("keys_tiny", None)
    importlib.invalidate_caches()
    return _key_of("keys_tiny:tiny")


def test_an_edited_factory_gets_another_key(tiny_env):
    tmp, _ = tiny_env
    original = _key_of("keys_tiny:tiny")
    assert _key_of("keys_tiny:tiny") == original                    # reproducible: seeded init
    forward = _edit(tmp, "x = torch.relu(self.conv2(x))", "x = torch.tanh(self.conv2(x))")
    assert forward != original                                      # same modules and weights, other forward
    back = _edit(tmp, "x = torch.tanh(self.conv2(x))", "x = torch.relu(self.conv2(x))")
    assert back == original
    init = _edit(tmp, "    return Tiny()", "    torch.manual_seed(1)\n    return Tiny()")
    assert init not in (original, forward)                          # same code path, other init
    _edit(tmp, "    torch.manual_seed(1)\n    return Tiny()", "    return Tiny()")
    layer = _edit(tmp, "nn.Conv2d(8, 8, 3, stride=2, padding=1)", "nn.Conv2d(8, 8, 3, stride=2, padding=1, bias=False)")
    assert layer not in (original, forward, init)
    _edit(tmp, ", bias=False)", ")")
    comment = _edit(tmp, "def tiny():", "# a comment changes nothing that is measured\ndef tiny():")
    assert comment == original


def test_fp32_on_a_bf16_table_measures_its_own_set_and_keeps_the_label(tiny_env):
    tmp, profile = tiny_env
    assert leakage(profile, tmp / "run", "--precision", "bf16").exit_code == 0
    before = profile_table.read(profile)
    fp32 = leakage(profile, tmp / "run", "--precision", "fp32", "--layers", "1")
    assert fp32.exit_code == 0, fp32.output
    assert "; new; to do [1];" in fp32.output and "(partial set)" in fp32.output
    after = profile_table.read(profile)
    assert after["leakage_meta"] == before["leakage_meta"]             # still bf16, nothing relabelled
    assert after["leakage_meta"]["precision"] == "bf16" and after["splits"] == before["splits"]
    (partial,) = after["leakage_history"]
    assert partial["status"] == "partial" and partial["meta"]["precision"] == "fp32"
    assert partial["meta"]["victim"]["precision"] == "fp32" and set(partial["splits"]) == {"1"}
    assert partial["meta"]["settings_key"] != before["leakage_meta"]["settings_key"]
    listed = CliRunner().invoke(main, ["leakage-sets", str(profile)])
    assert listed.exit_code == 0 and listed.output.splitlines()[2].split()[-1] == "precision=fp32"


def _documented_lenet7() -> LeakageSettings:
    weights = "data/weights/lenet7-fashion-mnist.pt"
    victim = victim_identity(load_model("lenet7", weights=str(ROOT / weights)).model, torch.device("cpu"), True)
    return LeakageSettings.from_budget("lenet7", weights, "fashion-mnist", 32, "quick", 0, victim=victim)


def test_redo_keeps_the_replaced_value_in_the_history(tmp_path):
    """A redo of split 3 of a copy of the bundled LeNet-7 table, through the store as `leakage --redo` uses it."""
    profile = tmp_path / "lenet7.json"
    shutil.copy(ROOT / "data" / "profiles" / "lenet7.json", profile)
    table = profile_table.read(profile)
    settings = _documented_lenet7()
    assert settings.key() == table["leakage_meta"]["settings_key"]
    results, status = store.open_results(tmp_path / "run", settings, 7, table, redo=(3,))
    assert status == "resumed from the table (active set), redo [3]" and 3 not in results.splits
    old = table["splits"][3]["leakage"]
    new = dict(store.results_entry(old), ssim=old["ssim"] - 0.1, ssim_per_image=[0.5] * 256)
    results.splits[3] = new
    results.run = {"device": "cpu", "precision": "bf16"}
    results.data = table["leakage_meta"]["data"]
    assert store.update_profile(profile, results, complete=True, force=False) == "active"

    after = profile_table.read(profile)
    assert after["splits"][3]["leakage"]["ssim"] == pytest.approx(old["ssim"] - 0.1)
    redone = [e for e in after["leakage_history"] if e["status"] == "redone" and e not in table["leakage_history"]]
    assert len(redone) == 1 and redone[0]["splits"] == {"3": old} and redone[0]["moved"]
    assert redone[0]["meta"]["settings_key"] == settings.key()
    for field in store.PROVENANCE_FIELDS:                            # where the set's key came from stays
        assert after["leakage_meta"][field] == table["leakage_meta"][field]
    for z in (1, 2, 4, 5, 6):                                        # the other splits are untouched
        assert after["splits"][z]["leakage"] == table["splits"][z]["leakage"]
    assert after["leakage_history"][1:] == table["leakage_history"]  # earlier sets kept as they were
    written = profile.read_bytes()                                   # the same values again: nothing written
    assert store.update_profile(profile, results, complete=True, force=False) == "active"
    assert profile.read_bytes() == written
    # a redone entry is never resumed from nor offered for activation
    assert leakage_sets.find_set(after, settings.key())[0] == "active"


def _fake_entry(z: int, writer: int) -> dict:
    ssim = 0.5 + 0.01 * z + 0.001 * writer
    return {"ssim": ssim, "ssim_ci95": [ssim - 0.01, ssim + 0.01], "psnr": 20.0, "psnr_ci95": [19.0, 21.0],
            "ssim_per_image": [ssim, ssim]}


def _writer(profile: str, settings_json: dict, key: str, splits: list[int], writer: int, start) -> None:
    """One process: measure (here: make up) its splits one by one, writing the table after each, as a run does."""
    start.wait()
    num_units = len(profile_table.read(Path(profile))["units"])
    results = store.Results(settings_json, key, num_units, floor=None, run={"device": "cpu", "precision": "bf16"})
    for z in splits:
        results.splits[z] = _fake_entry(z, writer)
        store.update_profile(Path(profile), results, complete=False, force=False)


@pytest.mark.parametrize("same_key_active", [True, False], ids=["into-the-active-set", "into-a-partial-set"])
def test_two_processes_writing_disjoint_splits_lose_nothing(tmp_path, same_key_active):
    """Two real processes on one copy of the bundled VGG-19 table, each writing every other split, one table
    write per split (the table is ~130 kB: each read-validate-write takes milliseconds, so they overlap)."""
    profile = tmp_path / "vgg19.json"
    shutil.copy(ROOT / "data" / "profiles" / "vgg19.json", profile)
    table = profile_table.read(profile)
    victim = VictimIdentity("w" * 64, "s" * 64, "bf16", "cpu")
    settings = LeakageSettings.from_budget("vgg19", "none", "embedded", 64, "quick", 7, victim=victim).as_json()
    key = table["leakage_meta"]["settings_key"] if same_key_active else "another-key"
    inner = list(range(1, len(table["units"])))
    context = multiprocessing.get_context("fork")
    start = context.Event()
    procs = [context.Process(target=_writer, args=(str(profile), settings, key, inner[i::2], i, start))
             for i in (0, 1)]
    for p in procs:
        p.start()
    start.set()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0]

    after = profile_table.read(profile)
    where, entries, meta = leakage_sets.find_set(after, key)
    assert {z: entries[z]["ssim"] for z in inner} == {z: _fake_entry(z, (z - 1) % 2)["ssim"] for z in inner}
    assert meta["complete"]
    assert where == "active"         # the merged set is complete: it became (or stayed) the active one
    if not same_key_active:          # and the set it replaced is kept whole
        replaced = after["leakage_history"][0]
        assert replaced["status"] == "replaced"
        assert replaced["splits"] == {str(z): table["splits"][z]["leakage"] for z in inner}


def test_a_smoke_run_on_a_table_without_leakage_is_not_made_active(tiny_env):
    tmp, profile = tiny_env
    smoke = leakage(profile, tmp / "run", budget="smoke")
    assert smoke.exit_code == 0, smoke.output
    assert "(partial set)" in smoke.output
    assert "has no active leakage set yet" in smoke.output and "earlier leakage set" not in smoke.output
    assert "a smoke-budget set is a wiring check and never becomes active" in smoke.output
    table = profile_table.read(profile)
    assert table["leakage_meta"] is None and all(s["leakage"] is None for s in table["splits"])
    (kept,) = table["leakage_history"]
    assert kept["status"] == "partial" and kept["meta"]["budget"] == "smoke" and set(kept["splits"]) == {"1", "2"}
    real = leakage(profile, tmp / "run")                             # a real budget then becomes active
    assert real.exit_code == 0 and profile_table.read(profile)["leakage_meta"]["budget"] == "quick"
    assert profile_table.read(profile)["leakage_history"] == [kept]


def _rekey_script():
    spec = importlib.util.spec_from_file_location("rekey_leakage_sets", ROOT / "benchmarks" / "rekey_leakage_sets.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_migration_rekeys_a_legacy_set_without_changing_a_value(tmp_path, monkeypatch):
    """benchmarks/rekey_leakage_sets.py on a copy of the LeNet-7 table put back to its legacy key: it gives the
    key the bundled table carries, changes no leakage value, is resumable, and refuses a meta that does not
    give the recorded key."""
    monkeypatch.chdir(ROOT)                                   # weights labels are relative to the repository
    rekey = _rekey_script().rekey
    bundled = json.loads((ROOT / "data" / "profiles" / "lenet7.json").read_text())
    legacy = json.loads(json.dumps(bundled))
    meta = legacy["leakage_meta"]
    meta["settings_key"] = meta.pop("legacy_settings_key")
    for field in ("victim", "settings_key_formula", "rekeyed"):
        del meta[field]
    path = tmp_path / "lenet7.json"
    path.write_text(json.dumps(legacy))

    line = rekey(path, "2026-12-02T00:00:00+00:00")
    assert f"{meta['settings_key']} -> {bundled['leakage_meta']['settings_key']}" in line
    after = json.loads(path.read_text())
    assert {k: v for k, v in after.items() if k != "leakage_meta"} == {
        k: v for k, v in legacy.items() if k != "leakage_meta"}    # every split and history value as it was
    assert after["leakage_meta"]["victim"] == bundled["leakage_meta"]["victim"]
    assert after["leakage_meta"]["rekeyed"]["unchanged_since_the_set_was_measured"]
    written = path.read_bytes()
    assert "nothing to do" in rekey(path, "2026-12-03T00:00:00+00:00") and path.read_bytes() == written

    meta["seed"] = 1                                            # a meta that does not describe its set
    path.write_text(json.dumps(legacy))
    before = path.read_bytes()
    with pytest.raises(UserInputError, match="does not give its key"):
        rekey(path, "2026-12-02T00:00:00+00:00")
    assert path.read_bytes() == before
