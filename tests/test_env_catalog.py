"""Profiles → service tensors; malformed or incomplete profiles refused naming file and field."""

import json
import shutil

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
