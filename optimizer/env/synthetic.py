"""SYNTHETIC profile tables (schema 1) for tests and benchmarks when real profiles are absent.

These numbers are made up to have realistic magnitudes (per-model totals near torchvision's published
MACs and parameter counts at 224 px; LeNets at 32 px); they are NOT measurements. Every table says so in
``weights`` and ``generator``. Never use them for reported results.
"""

from __future__ import annotations

import math
from typing import Any

from profiler.table import SCHEMA_VERSION

ELEMENT_BYTES = 4

# model: (input C,H,W, total MACs, total params, L units, output elements of unit 1, final outputs)
_SPECS: dict[str, tuple[tuple[int, int, int], float, float, int, int, int]] = {
    "lenet7": ((1, 32, 32), 0.42e6, 61.7e3, 5, 6 * 14 * 14, 10),
    "lenet9": ((1, 32, 32), 0.65e6, 0.11e6, 7, 6 * 16 * 16, 10),
    "lenet12": ((1, 32, 32), 1.1e6, 0.25e6, 10, 8 * 16 * 16, 10),
    "resnet18": ((3, 224, 224), 1.814e9, 11.69e6, 10, 64 * 56 * 56, 1000),
    "resnet34": ((3, 224, 224), 3.664e9, 21.80e6, 18, 64 * 56 * 56, 1000),
    "resnet50": ((3, 224, 224), 4.089e9, 25.56e6, 18, 256 * 56 * 56, 1000),
    "vgg13": ((3, 224, 224), 11.31e9, 133.05e6, 13, 64 * 112 * 112, 1000),
    "vgg16": ((3, 224, 224), 15.47e9, 138.36e6, 16, 64 * 112 * 112, 1000),
    "vgg19": ((3, 224, 224), 19.63e9, 143.67e6, 19, 64 * 112 * 112, 1000),
}


def make_table(model: str, input_shape: tuple[int, ...], unit_macs: list[float], unit_params: list[int],
               unit_output_elems: list[int], ssim: list[float]) -> dict[str, Any]:
    """A schema-valid table from per-unit MACs, parameter counts, output elements and the SSIM of
    every split z = 0..L (``ssim[0]`` should be 1 and ``ssim[L]`` 0 by the paper's convention)."""
    L = len(unit_macs)
    assert len(unit_params) == len(unit_output_elems) == L and len(ssim) == L + 1
    input_bytes = ELEMENT_BYTES * math.prod(input_shape)
    units = [{"index": l + 1, "name": f"unit{l + 1}", "modules": [f"layer{l + 1}"],
              "macs": unit_macs[l], "flops": 2 * unit_macs[l], "params": unit_params[l],
              "param_bytes": ELEMENT_BYTES * unit_params[l], "output_shape": [unit_output_elems[l]],
              "output_bytes": ELEMENT_BYTES * unit_output_elems[l], "latency_ms": None} for l in range(L)]
    splits = []
    for z in range(L + 1):
        dev_macs, srv_macs = sum(unit_macs[:z]), sum(unit_macs[z:])
        splits.append({
            "split": z, "device_param_bytes": ELEMENT_BYTES * sum(unit_params[:z]),
            "device_macs": dev_macs, "device_flops": 2 * dev_macs,
            "server_macs": srv_macs, "server_flops": 2 * srv_macs,
            "uplink_bytes": input_bytes if z == 0 else units[z - 1]["output_bytes"],
            "device_latency_ms": None, "server_latency_ms": None,
            "leakage": {"ssim": ssim[z], "ssim_ci95": [ssim[z], ssim[z]], "psnr": None, "psnr_ci95": None,
                        "measured": 0 < z < L}})
    return {
        "schema_version": SCHEMA_VERSION, "model": model, "input_shape": list(input_shape),
        "element_bytes": ELEMENT_BYTES, "input_bytes": input_bytes, "weights": "none (SYNTHETIC table)",
        "compute_convention": "flops = 2 x macs", "generator": {"synthetic": True,
                                                                "by": "optimizer.env.synthetic"},
        "latency": None,
        "totals": {"macs": sum(unit_macs), "flops": 2 * sum(unit_macs), "params": sum(unit_params),
                   "param_bytes": ELEMENT_BYTES * sum(unit_params), "latency_ms": None},
        "uncounted": [], "units": units, "splits": splits, "leakage_meta": {"synthetic": True},
    }


def synthetic_zoo() -> dict[str, dict[str, Any]]:
    """Nine SYNTHETIC tables shaped like the paper's zoo: compute spread evenly over the units,
    parameters weighted towards the last units (classifier heads), feature maps shrinking
    geometrically to the class scores, SSIM falling from 1 to ~0.3 then 0 at z = L."""
    zoo = {}
    for model, (shape, macs, params, L, first_out, last_out) in _SPECS.items():
        unit_macs = [macs / L] * L
        weights = [1.0 + 3.0 * (l / max(L - 1, 1)) ** 3 for l in range(L)]
        unit_params = [int(params * w / sum(weights)) for w in weights]
        ratio = (last_out / first_out) ** (1.0 / max(L - 1, 1))
        outs = [max(int(first_out * ratio ** l), 1) for l in range(L)]
        ssim = [1.0] + [round(0.3 + 0.65 * (1 - z / L) ** 2, 4) for z in range(1, L)] + [0.0]
        zoo[model] = make_table(model, shape, unit_macs, unit_params, outs, ssim)
    return zoo
