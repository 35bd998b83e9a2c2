"""Measured per-unit latency: the median of repeated timed runs after warm-up, batch 1.

These are wall-clock times on the profiling machine (recorded in the table's ``latency`` block); the
optimizer's delay model uses FLOPs and device capacities (τ_k^U = D^in Ω^U / f_k, Sec. III), so these
figures are for reading and for calibrating, not an input of the system model.
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from dataclasses import dataclass
from functools import partial
from typing import Any, Callable, Sequence

import torch
from torch import nn

from common.devices import DEVICES, resolve_device
from common.errors import UserInputError


#: Upper bounds of ``repeats`` and ``warmup``: 1000 runs of vgg19 (0.2 s each at batch 1, 2 cores) take
#: 3–4 min, the median settles long before (the bundled tables use 20 after 3), and an unbounded count
#: only hangs the tool.
MAX_REPEATS = 1000
MAX_WARMUP = 1000


@dataclass(frozen=True)
class LatencyConfig:
    """How latency is measured: ``repeats`` timed runs (median kept) after ``warmup`` untimed runs."""

    device: str = "auto"
    repeats: int = 20
    warmup: int = 3

    def __post_init__(self) -> None:
        if self.device not in DEVICES:
            raise UserInputError(f"--device {self.device!r}: expected one of {', '.join(DEVICES)}")
        if not 1 <= self.repeats <= MAX_REPEATS:
            raise UserInputError(f"--repeats {self.repeats}: give 1..{MAX_REPEATS}")
        if not 0 <= self.warmup <= MAX_WARMUP:
            raise UserInputError(f"--warmup {self.warmup}: give 0..{MAX_WARMUP}")


def _synchroniser(device: torch.device) -> Callable[[], None]:
    return torch.cuda.synchronize if device.type == "cuda" else (lambda: None)


def median_ms(runs: Sequence[Callable[[], Any]], repeats: int, warmup: int, sync: Callable[[], None],
              tick: Callable[[], None] = lambda: None) -> list[float]:
    """Median wall time in ms of each callable over ``repeats`` runs, after ``warmup`` untimed runs each.

    Timed runs go round-robin (unit 1, 2, ..., L, then again), so a burst of load from another process
    lands on all units alike instead of inflating a few neighbouring ones. ``tick`` is called after
    every run, warm-up included: ``len(runs) * (warmup + repeats)`` times in all (a progress bar).
    """
    for run in runs:
        for _ in range(warmup):
            run()
            tick()
    sync()
    times: list[list[float]] = [[] for _ in runs]
    for _ in range(repeats):
        for run, bucket in zip(runs, times):
            start = time.perf_counter()
            run()
            sync()
            bucket.append(time.perf_counter() - start)
            tick()
    return [1e3 * statistics.median(bucket) for bucket in times]


def _load_average() -> float | None:
    """The machine's 1-minute load average (None where the OS has none): timings are only as quiet as it."""
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def measure_units(modules: Sequence[nn.Module], inputs: Sequence[torch.Tensor], config: LatencyConfig,
                  tick: Callable[[], None] = lambda: None) -> tuple[list[float], dict[str, Any]]:
    """Per-unit median latency (ms) of ``modules[l](inputs[l])`` and the table's ``latency`` block.

    On CUDA the units are moved to the GPU for the measurement and moved back to the CPU afterwards.
    """
    device = resolve_device(config.device)
    sync = _synchroniser(device)
    load_before = _load_average()
    chain = nn.Sequential(*modules)
    try:
        chain.to(device)
        with torch.inference_mode():
            runs = [partial(module, x.to(device)) for module, x in zip(chain, inputs)]
            latencies = median_ms(runs, config.repeats, config.warmup, sync, tick)
    finally:
        chain.to("cpu")
    block = {
        "device": device.type,
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor()
        or platform.machine(),
        "threads": torch.get_num_threads(),
        "batch": 1,
        "repeats": config.repeats,
        "warmup": config.warmup,
        "statistic": "median per unit (timed round-robin over units); totals and splits are sums of unit medians",
        "mode": "torch.inference_mode, eval()",
        "load_average_1m": [load_before, _load_average()],  # before/after: other processes inflate times
    }
    return latencies, block
