"""The schema-1 table: per-unit fields, cumulative split terms (D^U, Ω^U, Ω^E, D^up), leakage kept."""

from __future__ import annotations

import json

import pytest
import torch

from common.errors import UserInputError
from profiler import table as schema
from profiler.build import ProfileOptions, profile_model, write_profile
from profiler.graph import split_model
from profiler.latency import LatencyConfig
from profiler.zoo import load_model

NO_LATENCY = ProfileOptions(latency=None, command="test")


@pytest.fixture(scope="module")
def resnet18():
    loaded = load_model("resnet18")
    return loaded, profile_model(loaded, NO_LATENCY)


def test_table_validates_and_records_conventions(resnet18):
    _, table = resnet18
    schema.validate(table)
    assert table["model"] == "resnet18" and table["weights"] == "none"
    assert table["input_shape"] == [3, 224, 224] and table["element_bytes"] == 4
    assert table["input_bytes"] == 4 * 3 * 224 * 224
    assert "2 x macs" in table["compute_convention"]
    assert table["latency"] is None and table["totals"]["latency_ms"] is None
    assert all(s["leakage"] is None for s in table["splits"]) and table["leakage_meta"] is None
    assert [u["name"] for u in table["units"]][:2] == ["conv1", "layer1.0"]


def test_totals_match_torchvision_parameter_count(resnet18):
    loaded, table = resnet18
    assert table["totals"]["params"] == 11_689_512  # torchvision's published ResNet-18 size
    floats = [t for t in loaded.model.state_dict().values() if t.is_floating_point()]
    assert table["totals"]["param_bytes"] == sum(4 * t.numel() for t in floats)
    assert all(u["flops"] == 2 * u["macs"] for u in table["units"])


def test_uplink_bytes_are_the_tensor_that_crosses_each_cut(resnet18):
    loaded, table = resnet18
    split = split_model(loaded.model)
    x = loaded.example_input()
    last = len(table["units"])
    with torch.no_grad():  # the stem, a residual block, the pooled last block, the logits
        for s in (table["splits"][z] for z in (0, 1, 5, last - 1, last)):
            sent = split.head(s["split"])(x)
            assert s["uplink_bytes"] == sent.element_size() * sent.numel()
            if s["split"]:
                assert table["units"][s["split"] - 1]["output_shape"] == list(sent.shape[1:])
    assert table["splits"][0]["uplink_bytes"] == 602_112
    assert table["splits"][-1]["uplink_bytes"] == 4 * 1000  # split L sends the 1000 logits


def test_cumulative_device_and_server_terms(resnet18):
    _, table = resnet18
    units, splits, total = table["units"], table["splits"], table["totals"]["macs"]
    running_bytes = running_macs = 0
    for z, s in enumerate(splits):
        if z:
            running_bytes += units[z - 1]["param_bytes"]
            running_macs += units[z - 1]["macs"]
        assert s["device_param_bytes"] == running_bytes
        assert s["device_macs"] == running_macs and s["server_macs"] == total - running_macs
        assert s["device_flops"] == 2 * running_macs and s["server_flops"] == 2 * (total - running_macs)
    assert splits[0]["device_macs"] == 0 and splits[-1]["server_macs"] == 0


def test_latency_fields_when_measured():
    loaded = load_model("lenet7")
    table = profile_model(loaded, ProfileOptions(latency=LatencyConfig(device="cpu", repeats=2, warmup=1)))
    schema.validate(table)
    unit_ms = [u["latency_ms"] for u in table["units"]]
    assert all(ms > 0 for ms in unit_ms)
    assert table["totals"]["latency_ms"] == pytest.approx(sum(unit_ms))
    for z, s in enumerate(table["splits"]):
        assert s["device_latency_ms"] == pytest.approx(sum(unit_ms[:z]))
        assert s["server_latency_ms"] == pytest.approx(sum(unit_ms[z:]))
    assert table["latency"]["device"] == "cpu" and table["latency"]["repeats"] == 2


def _with_leakage(path):
    data = json.loads(path.read_text())
    for s in data["splits"]:
        s["leakage"] = {"ssim": 0.5, "ssim_ci95": [0.4, 0.6], "psnr": 20.0, "psnr_ci95": [19, 21], "measured": True}
    data["leakage_meta"] = {"seed": 0}
    path.write_text(json.dumps(data))


def test_reprofiling_keeps_leakage_of_the_same_units_only(tmp_path):
    path = tmp_path / "lenet7.json"
    table = profile_model(load_model("lenet7"), NO_LATENCY)
    write_profile(path, table)
    _with_leakage(path)
    write_profile(path, profile_model(load_model("lenet7"), NO_LATENCY))
    kept = schema.read(path)
    assert kept["leakage_meta"] == {"seed": 0} and all(s["leakage"]["ssim"] == 0.5 for s in kept["splits"])
    # a different unit structure (another model) must not inherit it, nor drop it: the write is refused
    before = path.read_bytes()
    with pytest.raises(UserInputError, match="holds leakage or defenses measured for other units"):
        write_profile(path, profile_model(load_model("lenet9"), NO_LATENCY))
    assert path.read_bytes() == before
    other = tmp_path / "lenet9.json"                          # a file without leakage takes it
    write_profile(other, profile_model(load_model("lenet9"), NO_LATENCY))
    fresh = schema.read(other)
    assert fresh["model"] == "lenet9" and fresh["leakage_meta"] is None
    assert all(s["leakage"] is None for s in fresh["splits"])


def test_progress_hears_every_timed_and_warm_up_run():
    class Recorder:
        def __init__(self) -> None:
            self.stages, self.steps = [], 0

        def stage(self, name, total=None) -> None:
            self.stages.append((name, total, self.steps))

        def step(self) -> None:
            self.steps += 1

    progress = Recorder()
    profile_model(load_model("lenet7"), ProfileOptions(latency=LatencyConfig(device="cpu", repeats=3, warmup=2)),
                  progress)
    assert progress.stages == [("splitting and counting", None, 0), ("timing 7 units", 7 * (2 + 3), 0)]
    assert progress.steps == 7 * (2 + 3)
