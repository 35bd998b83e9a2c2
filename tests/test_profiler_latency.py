"""Latency: median of timed runs after warm-up, device selection."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from common.devices import resolve_device
from common.errors import UserInputError
from profiler import latency
from profiler.latency import LatencyConfig, measure_units, median_ms


def test_median_of_timed_runs_after_warmup_round_robin(monkeypatch):
    # fake clock: each run advances it by its next duration; warm-up runs (5 s) are not timed
    durations = {"a": iter([5.0, 5.0, 0.010, 0.030, 0.020, 0.500, 0.040]),
                 "b": iter([5.0, 5.0, 0.001, 0.002, 0.003, 0.004, 0.005])}
    clock = {"now": 0.0}
    order = []

    def runner(name):
        def run():
            order.append(name)
            clock["now"] += next(durations[name])
        return run

    monkeypatch.setattr(latency.time, "perf_counter", lambda: clock["now"])
    ms = median_ms([runner("a"), runner("b")], repeats=5, warmup=2, sync=lambda: None)
    assert order == ["a", "a", "b", "b"] + ["a", "b"] * 5
    assert ms == pytest.approx([30.0, 3.0])  # medians of 10, 30, 20, 500, 40 ms and of 1..5 ms


def test_measure_units_records_how(monkeypatch):
    modules = [nn.Linear(8, 8), nn.ReLU()]
    inputs = [torch.randn(1, 8), torch.randn(1, 8)]
    ms, block = measure_units(modules, inputs, LatencyConfig(device="cpu", repeats=3, warmup=1))
    assert len(ms) == 2 and all(m > 0 for m in ms)
    assert block["device"] == "cpu" and block["repeats"] == 3 and block["warmup"] == 1
    assert block["threads"] == torch.get_num_threads() and block["batch"] == 1


def test_device_resolution(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto").type == "cpu"
    with pytest.raises(UserInputError, match="no CUDA GPU"):
        resolve_device("cuda")
    with pytest.raises(UserInputError, match="--device"):
        LatencyConfig(device="tpu")
    with pytest.raises(UserInputError, match="--repeats"):
        LatencyConfig(repeats=0)
