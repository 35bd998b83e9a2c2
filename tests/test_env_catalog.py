"""Profiles → service tensors; malformed or incomplete profiles refused naming file and field."""

import json
import shutil
from pathlib import Path

import pytest
import torch

from common.errors import UserInputError
from optimizer.env import ServiceCatalog
from optimizer.env.synthetic import synthetic_zoo
from envtools import FIXTURES, tiny_catalog


def test_fixture_catalog_tensors():
    cat = tiny_catalog(services_per_model=2)
    assert cat.service_names == ("tiny_a#0", "tiny_a#1", "tiny_b#0", "tiny_b#1")
    assert cat.num_splits.tolist() == [2, 2, 1, 1] and cat.max_splits == 3
    assert cat.split_valid.tolist()[2] == [True, True, False]
    # values straight from the hand-written fixture files (FLOPs by default)
    assert cat.device_param_bytes[0].tolist() == [0, 1e6, 1.1e6]
    assert cat.device_work[0].tolist() == [0, 2e9, 3e9]
    assert cat.server_work[0].tolist() == [3e9, 1e9, 0]
    assert cat.uplink_bytes[0].tolist() == [120000, 8000, 40]
    assert cat.leakage[0].tolist() == [1.0, 0.5, 0.0]
    assert cat.model_bytes.tolist() == [1.1e6, 1.1e6, 2e6, 2e6]
    assert cat.raw_input_bytes.tolist() == [120000, 120000, 400, 400]
    # padded split 2 of tiny_b repeats its last split and is masked out
    assert cat.device_work[2].tolist() == [0, 4e9, 4e9]


def test_macs_switch():
    assert tiny_catalog(compute_unit="macs").device_work[0].tolist() == [0, 1e9, 1.5e9]


def test_leakage_boundaries_follow_the_paper():
    tables = {"tiny_a": json.loads((FIXTURES / "tiny_a.json").read_text())}
    tables["tiny_a"]["splits"][0]["leakage"]["ssim"] = 0.9     # eq. 3 convention: Lea(0) = 1, Lea(L) = 0
    tables["tiny_a"]["splits"][2]["leakage"]["ssim"] = 0.1
    assert ServiceCatalog.from_profiles(tables, 1).leakage[0].tolist() == [1.0, 0.5, 0.0]


def test_synthetic_zoo_is_schema_valid_and_labelled():
    zoo = synthetic_zoo()
    cat = ServiceCatalog.from_profiles(zoo, 5)
    assert cat.num_services == 45
    assert all("SYNTHETIC" in t["weights"] for t in zoo.values())


def _broken(tmp_path, edit):
    folder = tmp_path / "profiles"
    shutil.copytree(FIXTURES, folder)
    path = folder / "tiny_a.json"
    table = json.loads(path.read_text())
    edit(table)
    path.write_text(json.dumps(table))
    return folder


@pytest.mark.parametrize("edit, field", [
    (lambda t: t["splits"][1].pop("uplink_bytes"), "splits[1].uplink_bytes"),
    (lambda t: t["splits"][1].__setitem__("device_param_bytes", -5), "splits[1].device_param_bytes"),
    (lambda t: t["splits"][1]["leakage"].__setitem__("ssim", 1.2), "splits[1].leakage.ssim"),
    (lambda t: t.__setitem__("schema_version", 7), "schema_version"),
    (lambda t: t["splits"][1].__setitem__("leakage", None), "splits[1].leakage"),
    (lambda t: t["totals"].pop("param_bytes"), "totals.param_bytes"),
    (lambda t: (t.__setitem__("input_bytes", 0), t["splits"][0].__setitem__("uplink_bytes", 0)), "input_bytes"),
    (lambda t: t["splits"][2].__setitem__("device_flops", 1e9), "splits[2].device_flops"),
    (lambda t: t["splits"][2].__setitem__("device_param_bytes", 5e6), "splits[2].device_param_bytes"),
])
def test_malformed_profile_names_file_and_field(tmp_path, edit, field):
    folder = _broken(tmp_path, edit)
    with pytest.raises(UserInputError) as err:
        ServiceCatalog.from_profiles(folder, 1)
    assert "tiny_a.json" in str(err.value) and f"'{field}'" in str(err.value)


def test_not_json_and_missing_folder(tmp_path):
    folder = tmp_path / "p"
    folder.mkdir()
    with pytest.raises(UserInputError, match="no \\*.json profile tables"):
        ServiceCatalog.from_profiles(folder, 1)
    (folder / "x.json").write_text("{oops")
    with pytest.raises(UserInputError, match="x.json: not valid JSON"):
        ServiceCatalog.from_profiles(folder, 1)
    with pytest.raises(UserInputError, match="no such profile folder"):
        ServiceCatalog.from_profiles(tmp_path / "nope", 1)


def test_empty_service_list_refused():
    with pytest.raises(UserInputError, match="service list is empty"):
        ServiceCatalog.from_profiles({}, 5)
    with pytest.raises(UserInputError, match="services_per_model"):
        tiny_catalog(services_per_model=0)


def _with_meta(**meta_by_model):
    tables = {name: json.loads((FIXTURES / f"{name}.json").read_text()) for name in ("tiny_a", "tiny_b")}
    for name, meta in meta_by_model.items():
        tables[name]["leakage_meta"] = meta
    return tables


SETTINGS = {"image_size": 64, "weights": "none", "data": {"name": "embedded", "n_train": 2048}, "budget": "quick",
            "n_train": 2048, "n_test": 256, "decoder": {"steps": 250}, "loss": "mse+ssim", "seed": 0,
            "date": "2026-01-01", "device": "cpu"}


def test_equal_leakage_settings_give_no_warning():
    other_run = {**SETTINGS, "date": "2026-02-02", "device": "cuda"}   # when and where do not matter
    assert ServiceCatalog.from_profiles(_with_meta(tiny_a=SETTINGS, tiny_b=other_run), 1).leakage_warning is None
    assert ServiceCatalog.from_profiles(_with_meta(), 1).leakage_warning is None          # none recorded
    assert ServiceCatalog.from_profiles(synthetic_zoo(), 1).leakage_warning is None


def test_mixed_leakage_settings_are_named_in_one_line():
    other = {**SETTINGS, "image_size": 32, "seed": 3, "data": {"name": "cifar10"}, "decoder": {"steps": 1000}}
    warning = ServiceCatalog.from_profiles(_with_meta(tiny_a=SETTINGS, tiny_b=other), 1).leakage_warning
    assert "\n" not in warning
    assert "image_size 64 px (tiny_a) vs 32 px (tiny_b)" in warning
    assert "seed 0 (tiny_a) vs 3 (tiny_b)" in warning and "data embedded (tiny_a) vs cifar10 (tiny_b)" in warning
    assert "decoder" in warning and "budget" not in warning and "weights" not in warning
    trained = {**SETTINGS, "weights": "data/weights/tiny_b-fashion-mnist.pt"}
    kinds = ServiceCatalog.from_profiles(_with_meta(tiny_a=SETTINGS, tiny_b=trained), 1).leakage_warning
    assert "weights random-init (tiny_a) vs trained (tiny_b)" in kinds
    own_files = {**SETTINGS, "weights": "data/weights/tiny_a-fashion-mnist.pt"}   # each model its own file
    assert ServiceCatalog.from_profiles(_with_meta(tiny_a=own_files, tiny_b=trained), 1).leakage_warning is None
    partly = ServiceCatalog.from_profiles(_with_meta(tiny_a=SETTINGS), 1).leakage_warning
    assert partly.endswith("no leakage settings recorded for tiny_b")


def test_evaluate_prints_the_mixed_settings_warning_once(tmp_path):
    from click.testing import CliRunner

    from cli import main

    other = {**SETTINGS, "image_size": 32}
    for name, table in _with_meta(tiny_a=SETTINGS, tiny_b=other).items():
        (tmp_path / f"{name}.json").write_text(json.dumps(table))
    result = CliRunner().invoke(main, ["evaluate", "--profiles", str(tmp_path), "--policy", "local-only",
                                       "--episodes", "1", "--slots", "1", "--num-envs", "1",
                                       "--set", "env.num_servers=2", "--set", "env.num_users=3"])
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert warnings == ["warning: profile tables measured leakage under different settings, so their SSIMs "
                        "are not on one scale: image_size 64 px (tiny_a) vs 32 px (tiny_b)"]


def test_catalog_reads_each_models_leakage_floor():
    folder = Path(__file__).resolve().parents[1] / "data" / "profiles"
    cat = ServiceCatalog.from_profiles(folder, 2)
    for m, name in enumerate(cat.model_names):
        floor = json.loads((folder / f"{name}.json").read_text())["leakage_meta"]["floor"]["ssim"]["mean"]
        assert cat.leakage_floor[2 * m].item() == pytest.approx(floor) and 0.0 < floor < 0.9
    assert tiny_catalog().leakage_floor.tolist() == [0.0, 0.0]      # no leakage_meta: no floor
