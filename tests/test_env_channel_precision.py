"""Shannon rate at cell-edge SNR in float32 (docs/environment.md "Model, equation by equation": log1p(snr) / ln 2)."""

from __future__ import annotations

import math

import pytest
import torch

from optimizer.env import channel


@pytest.mark.parametrize("snr", [1e-2, 1e-4, 1e-6])
def test_rate_keeps_float32_precision_at_low_snr(snr):
    bandwidth_hz, noise_w_hz = 1e6, 1e-20
    power_w = snr * noise_w_hz * bandwidth_hz                     # gain 1: P g / σ² = snr
    rate = channel.shannon_rate_bps(torch.tensor([bandwidth_hz]), torch.tensor([power_w]),
                                    torch.tensor([1.0]), noise_w_hz)
    assert rate.dtype == torch.float32
    exact = bandwidth_hz * math.log1p(snr) / math.log(2.0)           # float64 reference
    assert rate.item() == pytest.approx(exact, rel=1e-6)             # log2(1 + snr) in float32: 3.7e-4 at 1e-4
