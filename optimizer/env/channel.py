"""Geometry and wireless channel (Sec. III-C, Table I). Pure functions on broadcastable tensors.

Distances in metres, powers in watts (dBm helpers convert), bandwidth in Hz, rates in bit/s.
"""

from __future__ import annotations

import math

import torch

from optimizer.config import ChannelConfig


def dbm_to_watt(dbm: torch.Tensor) -> torch.Tensor:
    """P [W] = 10^((P[dBm] − 30) / 10)."""
    return torch.pow(10.0, (dbm - 30.0) / 10.0)


def server_grid_m(num_servers: int, area_m: float) -> torch.Tensor:
    """(J, 2) server positions: centres of a cols × rows grid over the square area, filled row by row.

    cols = ceil(sqrt(J)), rows = ceil(J / cols); e.g. J = 4 → 2 × 2 at (250, 250), (750, 250), …
    """
    cols = math.ceil(math.sqrt(num_servers))
    rows = math.ceil(num_servers / cols)
    j = torch.arange(num_servers)
    x = (j % cols + 0.5) * (area_m / cols)
    y = (j // cols + 0.5) * (area_m / rows)
    return torch.stack([x, y], dim=-1).to(torch.float32)


def path_loss_db(distance_m: torch.Tensor, shadowing_db: torch.Tensor, cfg: ChannelConfig) -> torch.Tensor:
    """PL = PL(1 m) + 10·n·log10(max(d, d_min)) + X_σ, with X_σ = shadowing_db (already scaled by σ)."""
    d = distance_m.clamp_min(cfg.min_distance_m)
    return cfg.path_loss_ref_db + 10.0 * cfg.path_loss_exponent * torch.log10(d) + shadowing_db


def gain_from_db(loss_db: torch.Tensor) -> torch.Tensor:
    """Linear channel gain g = 10^(−PL/10)."""
    return torch.pow(10.0, -loss_db / 10.0)


def noise_w_per_hz(cfg: ChannelConfig) -> float:
    """N0·NF in W/Hz: σ² = N0·NF·B, i.e. −174 dBm/Hz + 10·log10(B) + 6 dB."""
    return 10.0 ** ((cfg.noise_psd_dbm_per_hz + cfg.noise_figure_db - 30.0) / 10.0)


def shannon_rate_bps(bandwidth_hz: torch.Tensor, power_w: torch.Tensor, gain: torch.Tensor,
                     noise_w_hz: float) -> torch.Tensor:
    """R = B·log2(1 + P·g / σ²), σ² = N0·NF·B (R^E2U with P_j, R^U2E with P_k). R = 0 where B = 0.

    log2(1 + snr) is computed as log1p(snr) / ln 2: in float32, 1 + snr loses ≈ 2^-24 / snr relative
    (3.7e-4 at snr = 1e-4), which matters for cell-edge users."""
    snr = power_w * gain / (noise_w_hz * bandwidth_hz)
    rate = bandwidth_hz * torch.log1p(snr) / math.log(2.0)
    return torch.where(bandwidth_hz > 0, rate, torch.zeros_like(rate))
