"""Defenses: known answers (bytes, floor, reference accuracy), published directions, the registry, storage.

The victim is LeNet-7 trained for 150 steps on the built-in ``gratings`` task (≈ 100 % test accuracy),
so accuracy drops are real; every run writes to copies in tmp_path.
"""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner

from cli import main
from inversion.data import victim_input
from inversion.defense import adversarial, builtin  # noqa: F401  (registration)
from inversion.defense import table as defense_table
from inversion.defense.builtin import Quantize, distance_correlation, quantize_ste
from inversion.defense.finetune import DefendedSplit, FinetuneConfig, finetune
from inversion.defense.labelled import gratings
from inversion.defense.measure import BUDGETS, Victim, price_option
from inversion.defense.registry import DEFENSES, Defense, DefenseRegistry
from inversion.defense.whitebox import WhiteboxConfig
from profiler.graph import split_model
from profiler.zoo import load_model

ROOT = Path(__file__).resolve().parents[1]
TABLE = ROOT / "data" / "profiles" / "lenet7.json"


@pytest.fixture(scope="module")
def trained(tmp_path_factory, one_torch_thread):
    """(state_dict file, model, data): LeNet-7 trained on gratings."""
    data = gratings(32, 0, 2048, 512)
    model = load_model("lenet7").model
    torch.manual_seed(0)
    opt = torch.optim.Adam(model.parameters(), 2e-3)
    gen = torch.Generator().manual_seed(0)
    for _ in range(150):
        idx = torch.randint(0, len(data.train_x), (64,), generator=gen)
        loss = F.cross_entropy(model(victim_input(data.train_x[idx], 3)), data.train_y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    file = tmp_path_factory.mktemp("weights") / "lenet7-gratings.pt"
    torch.save(model.state_dict(), file)
    return file, model, data


def _victim(model, data, n_train=256, n_test=64, seed=0) -> Victim:
    aux, vic = data.attacker_images(n_train, n_test, seed)
    units = [u["macs"] for u in json.loads(TABLE.read_text())["units"]]      # the table's (32 px, native)
    return Victim(split_model(model), 3, data.train_x, data.train_y, data.test_x, data.test_y, aux, vic,
                  units, torch.device("cpu"), False)


def test_quantisation_sends_k_over_32_of_the_float_bytes_plus_its_scale():
    for bits in (8, 4, 2, 1):
        q = Quantize(bits, (64, 8, 8))
        assert q.sent_bytes() == 64 * 8 * 8 * 4 * bits // 32 + 8
    x = torch.randn(3, 5, 7, 7)
    for bits in (1, 2, 4):
        y = quantize_ste(x, bits)
        for row, orig in zip(y.flatten(1), x.flatten(1)):
            assert len(torch.unique(row)) <= 2 ** bits
            step = (orig.max() - orig.min()) / (2 ** bits - 1)
            assert float((row - orig).abs().max()) <= float(step) / 2 + 1e-5
    assert Quantize(3, (10,)).sent_bytes() == math.ceil(10 * 3 / 8) + 8      # 30 bits → 4 bytes


def test_bottleneck_counts_its_convolutions_and_bytes():
    b = DEFENSES.get("bottleneck").build(4, (64, 8, 8))
    assert b.sent_shape() == (16, 8, 8)
    assert b.sent_bytes() == 16 * 8 * 8 * 4 // 8 + 8
    assert b.device_macs() == b.server_macs() == 64 * 16 * 8 * 8        # one 1×1 conv each side
    conv = sum(p.numel() for p in b.squeeze.parameters())
    assert conv == 64 * 16 + 16


def _dcor_numpy(x: np.ndarray, y: np.ndarray) -> float:
    """Székely's dCor², written out from the definition (independent of the module's torch code)."""
    def centred(a):
        d = np.sqrt(((a[:, None, :] - a[None, :, :]) ** 2).sum(-1))
        return d - d.mean(0, keepdims=True) - d.mean(1, keepdims=True) + d.mean()
    A, B = centred(x), centred(y)
    return float((A * B).mean() / np.sqrt((A * A).mean() * (B * B).mean()))


def test_distance_correlation_known_answers():
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(40, 6, generator=gen)
    assert float(distance_correlation(x, 3 * x + 2)) == pytest.approx(1.0, abs=1e-5)
    y = torch.randn(40, 3, generator=gen)
    assert float(distance_correlation(x, y)) == pytest.approx(_dcor_numpy(x.double().numpy(), y.double().numpy()), abs=1e-5)
    big_x, big_y = torch.randn(600, 4, generator=gen), torch.randn(600, 4, generator=gen)
    assert float(distance_correlation(big_x, big_y)) < 0.05


def test_no_defense_accuracy_is_the_models_own(trained):
    _, model, data = trained
    with torch.no_grad():
        own = float((model(victim_input(data.test_x, 3)).argmax(1) == data.test_y).float().mean())
    record = price_option(_victim(model, data), 2, DEFENSES.get("none"), 0.0, 0, BUDGETS["smoke"], own)
    assert record["accuracy"]["mean"] == pytest.approx(own, abs=1e-12) and own > 0.95
    assert record["accuracy_drop"] == pytest.approx(0.0, abs=1e-12)
    assert record["sent_bytes"] == record["clean_bytes"] == 4 * 32 * 16 * 16
    table = json.loads(TABLE.read_text())["splits"][2]
    assert (record["device_macs"], record["server_macs"]) == (table["device_macs"], table["server_macs"])


def test_huge_noise_leaks_at_the_floor(trained):
    """σ = 10⁴: the feature is noise; no attack does better than the mean auxiliary image on its images."""
    _, model, data = trained
    victim = _victim(model, data)
    budget = replace(BUDGETS["smoke"], whitebox=WhiteboxConfig(steps=5, images=64, batch_size=64, choose_images=4))
    record = price_option(victim, 2, DEFENSES.get("noise"), 1e4, 0, budget, 1.0)
    for name, attack in record["attacks"].items():
        assert attack["ssim_ci95"][0] <= attack["floor_ssim_ci95"][1], name       # the CIs meet
        assert attack["ssim"] <= attack["floor_ssim"] + 0.02, name
    clean = price_option(victim, 2, DEFENSES.get("none"), 0.0, 0, BUDGETS["smoke"], 1.0)
    assert clean["leakage"]["ssim"] > clean["attacks"]["decoder"]["floor_ssim"] + 0.3   # undefended, it leaks
    assert record["accuracy"]["mean"] < 0.5                             # and noise this strong costs the task


@pytest.mark.parametrize("name,strength", [("noise", 1.0), ("quantize", 1)])
def test_a_defense_aware_decoder_recovers_at_least_what_an_unaware_one_does(trained, name, strength):
    _, model, data = trained
    record = price_option(_victim(model, data), 2, DEFENSES.get(name), strength, 0, BUDGETS["smoke"], 1.0)
    aware, unaware = record["attacks"]["decoder"], record["attacks"]["decoder_unaware"]
    assert aware["ssim"] >= unaware["ssim"]
    assert record["leakage"]["ssim"] == max(a["ssim"] for a in record["attacks"].values())


def test_finetuning_trains_only_what_the_defense_says(trained):
    _, model, data = trained
    sm = split_model(model)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    for name, device_moves in (("noise-ft", False), ("nopeek", True)):
        defense = DEFENSES.get(name).build(1.0, (32, 16, 16))
        split = DefendedSplit(sm.head(2), defense, sm.tail(2), 3)
        head0 = [p.clone() for p in split.device_side.parameters()]
        tail0 = [p.clone() for p in split.server_side.parameters()]
        result = finetune(split, data.train_x, data.train_y, FinetuneConfig(steps=3, batch_size=16, val_images=256),
                          torch.device("cpu"), False, 0)
        moved = any(not torch.equal(a, b) for a, b in zip(head0, split.device_side.parameters()))
        assert moved == device_moves
        server_moved = any(not torch.equal(a, b) for a, b in zip(tail0, split.server_side.parameters()))
        assert server_moved == result.kept
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())   # the victim is never changed


def test_a_server_refit_that_hurts_is_not_kept(trained):
    """lr = 3 wrecks the server side in a few steps: the untouched server is restored, accuracy unchanged."""
    _, model, data = trained
    sm = split_model(model)
    split = DefendedSplit(sm.head(2), DEFENSES.get("noise-ft").build(0.25, (32, 16, 16)), sm.tail(2), 3)
    tail0 = [p.clone() for p in split.server_side.parameters()]
    result = finetune(split, data.train_x, data.train_y, FinetuneConfig(steps=5, batch_size=32, lr=3.0, val_images=256),
                      torch.device("cpu"), False, 0)
    assert not result.kept and result.val_after < result.val_before
    assert all(torch.equal(a, b) for a, b in zip(tail0, split.server_side.parameters()))


def test_registry_takes_a_users_defense_and_refuses_a_second_name():
    registry = DefenseRegistry()

    class Sign(Defense):
        def forward(self, feature):
            return torch.sign(feature)

    registry.register("sign", strength="-", strengths=(0,))(lambda s, shape: Sign(s, shape))
    assert registry.get("sign").build(0, (4,))(torch.tensor([[-2.0, 3.0, 0.0, 1.0]])).tolist() == [[-1, 1, 0, 1]]
    with pytest.raises(ValueError, match="already registered"):
        registry.register("sign", strength="-", strengths=(0,))(lambda s, shape: Sign(s, shape))
    with pytest.raises(Exception, match="unknown defense"):
        registry.get("nothing")


def _fresh_table(tmp_path: Path) -> Path:
    """A copy of the bundled LeNet-7 table without any priced defenses (the bundled one may hold some)."""
    table = json.loads(TABLE.read_text())
    table.pop("defenses", None)
    path = tmp_path / "lenet7.json"
    path.write_text(json.dumps(table, indent=1))
    return path


def _run(args, profile, weights, out):
    return CliRunner().invoke(main, ["defend", "--model", "lenet7", "--dataset", "gratings", "--weights", str(weights),
                                     "--profile", str(profile), "--out", str(out), "--budget", "smoke",
                                     "--threads", "1", *args])


def test_defend_command_resumes_keeps_and_redoes_without_losing_a_value(trained, tmp_path):
    weights, _, _ = trained
    profile = _fresh_table(tmp_path)
    profile_before = profile.read_text()
    first = _run(["--defense", "quantize", "--strengths", "2", "--layers", "4"], profile, weights, tmp_path / "o")
    assert first.exit_code == 0, first.output
    assert (tmp_path / "o" / "defense.png").is_file()
    table = json.loads(profile.read_text())
    key = next(iter(table["defenses"]["sets"]))
    assert set(defense_table.records(table, key)) == {"z4/none/0/seed0", "z4/quantize/2/seed0"}
    plain = defense_table.records(table, key)["z4/none/0/seed0"]       # MACs counted at run time = the profile's
    assert (plain["device_macs"], plain["server_macs"]) == (table["splits"][4]["device_macs"],
                                                            table["splits"][4]["server_macs"])
    assert table["splits"][4]["leakage"] == json.loads(TABLE.read_text())["splits"][4]["leakage"]  # untouched
    assert {k: v for k, v in table.items() if k != "defenses"} == json.loads(profile_before)
    value = table["defenses"]["sets"][key]["records"]["z4/quantize/2/seed0"]
    again = _run(["--defense", "quantize", "--strengths", "2,1", "--layers", "4"], profile, weights, tmp_path / "o")
    assert again.exit_code == 0 and "1 to do" not in again.output
    assert "to do 1" in again.output                                    # only the new strength
    table = json.loads(profile.read_text())
    assert table["defenses"]["sets"][key]["records"]["z4/quantize/2/seed0"] == value
    redo = _run(["--defense", "quantize", "--strengths", "2", "--layers", "4", "--redo"], profile, weights,
                tmp_path / "o")
    assert redo.exit_code == 0
    history = json.loads(profile.read_text())["defenses"]["history"]
    assert {h["option"] for h in history} == {"z4/none/0/seed0", "z4/quantize/2/seed0"}
    assert next(h for h in history if h["option"] == "z4/quantize/2/seed0")["record"] == value


@pytest.mark.parametrize("args,message", [
    (["--defense", "blur"], "unknown defense 'blur'"),
    (["--defense", "quantize", "--strengths", "4,,2"], "--strengths '4,,2'"),
    (["--defense", "quantize", "--strengths", "0.5"], "bits must be an integer"),
    (["--defense", "noise", "--layers", "7"], "--layers 7"),
    (["--defense", "noise", "--seeds", "1,1"], "named twice"),
    (["--defense", "noise", "--image-size", "40"], "--image-size 40: lenet7 cannot run at it"),
])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(trained, tmp_path, args, message):
    weights, _, _ = trained
    profile = _fresh_table(tmp_path)
    before = profile.read_bytes()
    result = _run(args, profile, weights, tmp_path / "o")
    assert result.exit_code == 2 and message in result.output, result.output
    assert "Traceback" not in result.output
    assert profile.read_bytes() == before and not (tmp_path / "o").exists()


def test_profile_over_a_table_keeps_its_defenses(tmp_path):
    from profiler.build import keep_leakage
    old = json.loads(TABLE.read_text()) | {"defenses": {"schema": 1, "sets": {"k": {"meta": {}, "records": {}}},
                                                        "history": []}}
    new = json.loads(TABLE.read_text())
    new.pop("defenses", None)
    assert keep_leakage(new, old)["defenses"] == old["defenses"]


def test_a_users_defense_runs_by_module_name(trained, tmp_path, monkeypatch):
    (tmp_path / "userdefs.py").write_text(
        "import math\nimport torch\nfrom inversion.defense.registry import Defense, register_defense\n\n"
        "class Sign(Defense):\n    def forward(self, f):\n        return torch.sign(f)\n"
        "    def sent_bytes(self):\n        return math.ceil(math.prod(self.feature_shape) / 8)\n\n"
        "@register_defense('sign-test', strength='-', strengths=(0,), trains='server')\n"
        "def sign(strength, shape):\n    return Sign(strength, shape)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    weights, _, _ = trained
    profile = _fresh_table(tmp_path)
    result = _run(["--defense", "userdefs:sign-test", "--layers", "4"], profile, weights, tmp_path / "o")
    assert result.exit_code == 0, result.output
    record = next(r for r in next(iter(json.loads(profile.read_text())["defenses"]["sets"].values()))["records"].values()
                  if r["defense"] == "sign-test")
    assert record["sent_bytes"] == 64 * 8 * 8 // 8 and record["trains"] == "server"
    assert record["finetune"]["steps"] == BUDGETS["smoke"].finetune.steps
