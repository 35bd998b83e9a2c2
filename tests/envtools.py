"""Shared helpers of the env tests: the tiny hand-made catalog and a way to pin one slot's state."""

from __future__ import annotations

from pathlib import Path

import torch

from optimizer.config import CostConfig, EnvConfig
from optimizer.env import EdgeEnv, ServiceCatalog

FIXTURES = Path(__file__).parent / "fixtures" / "profiles"
# N0 · NF in W/Hz: 10^((−174 dBm/Hz + 6 dB − 30) / 10) = 10^(−19.8)
NOISE_W_PER_HZ = 10 ** -19.8


def tiny_catalog(services_per_model: int = 1, compute_unit: str = "flops") -> ServiceCatalog:
    """tiny_a (L = 2) and tiny_b (L = 1) from tests/fixtures/profiles."""
    return ServiceCatalog.from_profiles(FIXTURES, services_per_model, compute_unit)


def tiny_env(num_envs: int = 1, seed: int | list[int] = 0, **overrides) -> EdgeEnv:
    """2 servers, 3 users, the tiny catalog, short episodes. The hand-worked slots of the env tests count
    D_raw in megabytes (privacy_bytes_scale = 1e-6), the tiny tables have no leakage floor."""
    kwargs = dict(num_servers=2, num_users=3, services_per_model=1, slots_per_episode=6, delta_t=2,
                  cost=CostConfig(privacy_bytes_scale=1e-6))
    kwargs.update(overrides)
    cfg = EnvConfig(**kwargs)
    return EdgeEnv(cfg, tiny_catalog(cfg.services_per_model, cfg.compute_unit), num_envs=num_envs, seed=seed)


def pin_slot(env: EdgeEnv, service: list[int], batch: list[int], gain: list[list[float]]) -> None:
    """Overwrite the drawn requests and channel of the current slot (B = 1): gain[j][k]."""
    env.request_service = torch.tensor([service])
    env.request_batch = torch.tensor([batch])
    env.channel_gain = torch.tensor([gain], dtype=torch.float32)


def pin_capacities(env) -> None:
    """The capacities of the hand-worked slot of tests/test_env_system_model.py (B = 1, J = 2, K = 3)."""
    env.server_flops = torch.tensor([[1e12, 2e12]])
    env.server_bandwidth_hz = torch.tensor([[1e7, 2e7]])
    env.server_power_w = torch.tensor([[10.0, 10.0]])
    env.cloud_rate_bps = torch.tensor([[2e8, 2e8]])
    env.server_storage_bytes = torch.tensor([[5e9, 5e9]])
    env.user_flops = torch.tensor([[20e9, 50e9, 10e9]])
    env.user_power_w = torch.tensor([[2.0, 1.0, 1.0]])
    env.energy_j_per_flop = torch.tensor([[1e-10, 2e-10, 1e-10]])
    env.privacy_pref = torch.tensor([[0.5, 0.25, 0.5]])
    env.user_storage_bytes = torch.tensor([[1e9, 1e9, 1e9]])


# g_00: downlink SNR 10·g/(N0NF·1e7) = 15, uplink 2·g/(N0NF·1e7) = 3 → g = 15 · N0NF · 1e7 / 10
G00 = 15 * NOISE_W_PER_HZ * 1e7 / 10
# g_11: uplink SNR 1·g/(N0NF·1e7) = 1 with B_11 = 0.5 · 2e7 = 1e7 → g = N0NF · 1e7
G11 = NOISE_W_PER_HZ * 1e7
GAIN = [[G00, 1e-12, 1e-12], [1e-12, G11, 1e-12]]
