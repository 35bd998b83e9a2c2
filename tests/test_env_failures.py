"""Failure conventions (README "Environment conventions"): time-outs are charged what they spent, a
cache miss is not, and no action earns more by failing than by finishing late."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from optimizer.baselines import greedy_fill
from optimizer.config import CapacityConfig, CostConfig, EnvConfig, RewardConfig
from optimizer.env import EdgeEnv, ServiceCatalog
from optimizer.env import system_model as sm
from optimizer.env.metrics import delay_quantiles, slot_metrics
from optimizer.env.synthetic import synthetic_zoo

T = torch.tensor
MB_SCALE = CostConfig(privacy_bytes_scale=1e-6)     # the hand numbers count D_raw in megabytes


def _outcome(uplink_bps: float, hosted: bool) -> sm.UserOutcome:
    return sm.user_outcome(
        input_batch=T(2.0), download_bytes=T(0.0), device_work=T(2e9), server_work=T(1e9), uplink_bytes=T(1000.0),
        leakage=T(0.5), raw_input_bytes=T(120000.0), hosted=T(hosted), user_flops=T(1e10),
        allocated_flops=T(1e11), downlink_bps=T(1e7), uplink_bps=T(uplink_bps), user_power_w=T(2.0),
        energy_j_per_flop=T(1e-10), privacy_pref=T(0.5), cost=MB_SCALE, tau_fail_s=30.0)


def test_a_time_out_is_charged_what_it_spent_and_a_miss_nothing():
    # τ^U = 2·2e9/1e10 = 0.4 s, τ^E = 2·1e9/1e11 = 0.02 s, τ^U2E = 2·1000·8 / R
    fast = _outcome(uplink_bps=1.6e4, hosted=True)              # τ^U2E = 1 s: served, τ = 1.42 s
    assert bool(fast.served) and not bool(fast.timed_out)
    assert fast.delay_s.item() == pytest.approx(1.42)
    assert fast.energy_j.item() == pytest.approx(0.4 + 2.0 * 1.0)   # ε D^in Ω^U + P τ^U2E
    assert fast.privacy.item() == pytest.approx(0.15)              # 1.25 · 0.5 · 2 · 0.12
    slow = _outcome(uplink_bps=400.0, hosted=True)              # τ^U2E = 40 s > τ_fail: time-out
    assert not bool(slow.served) and bool(slow.timed_out)
    assert slow.delay_s.item() == 30.0                             # the user stops waiting at τ_fail
    assert slow.energy_j.item() == pytest.approx(0.4 + 2.0 * 30.0)  # upload energy for at most τ_fail
    assert slow.privacy.item() == pytest.approx(0.15)              # the feature was sent
    dead = _outcome(uplink_bps=0.0, hosted=True)                # no bandwidth: infinite τ^U2E, finite energy
    assert bool(dead.timed_out) and dead.energy_j.item() == pytest.approx(60.4)
    miss = _outcome(uplink_bps=1.6e4, hosted=False)             # not deployed: nothing ran
    assert not bool(miss.served) and not bool(miss.timed_out)
    assert (miss.delay_s.item(), miss.energy_j.item(), miss.privacy.item()) == (30.0, 0.0, 0.0)
    rewards = sm.user_reward(torch.stack([fast.privacy, slow.privacy, miss.privacy]),
                             torch.stack([fast.energy_j, slow.energy_j, miss.energy_j]),
                             torch.stack([fast.delay_s, slow.delay_s, miss.delay_s]),
                             torch.stack([fast.served, slow.served, miss.served]), MB_SCALE, RewardConfig())
    # served: −(5·0.15 + 5·2.4) = −12.75; time-out: −300 − 5·0.15 − 5·60.4 = −602.75; miss: −300
    assert rewards.tolist() == pytest.approx([-12.75, -602.75, -300.0])


@pytest.mark.parametrize("seed", range(6))
def test_no_action_earns_more_by_failing_than_by_finishing_late(seed):
    """Slowing an action's link and server down (shares × s, s → 0) never raises its reward: the reward
    falls with τ^succ through the time-out boundary and stays below every late success."""
    cfg = EnvConfig(num_servers=3, num_users=40, services_per_model=2, slots_per_episode=4, delta_t=2)
    env = EdgeEnv(cfg, ServiceCatalog.from_profiles(synthetic_zoo(), 2), num_envs=2, seed=seed)
    env.reset()
    gen = torch.Generator().manual_seed(seed)
    B, J, K, I, Z = env.dims
    env.deploy(greedy_fill(torch.rand(B, J, I, generator=gen), env.catalog.model_bytes, env.server_storage_bytes))
    obs = env.user_observation()
    server = torch.multinomial(obs.server_mask.reshape(-1, J).float(), 1, generator=gen).view(B, K)
    split = torch.multinomial(obs.split_mask.reshape(-1, Z).float(), 1, generator=gen).view(B, K)
    compute = torch.rand(B, J, K, generator=gen)
    bandwidth = torch.rand(B, J, K, generator=gen)
    scales = [1.0, 0.3, 0.1, 0.03, 1e-2, 3e-3, 1e-3, 3e-4, 1e-4, 1e-5, 0.0]
    rewards, served, timed_out = [], [], []
    for s in scales:
        res = copy.deepcopy(env).step(server, split, compute * s, bandwidth * s)
        rewards.append(res.user_reward)
        served.append(res.served)
        timed_out.append(res.timed_out)
    r = torch.stack(rewards)                                    # (S, B, K), shares shrinking
    assert (r[1:] <= r[:-1] + 1e-3 * r[:-1].abs().clamp_min(1.0)).all()
    assert torch.stack(served)[0].any() and torch.stack(timed_out)[-1].any()   # both regimes were reached
    worst_served = torch.where(torch.stack(served), r, torch.full_like(r, np.inf)).min(0).values
    best_timeout = torch.where(torch.stack(timed_out), r, torch.full_like(r, -np.inf)).max(0).values
    assert (best_timeout <= worst_served).all()       # per user: every time-out below every success


def test_slot_metrics_by_hand():
    delay = T([[1.0, 5.0, 30.0, 30.0]])
    out = sm.UserOutcome(download_s=delay, local_s=delay, upload_s=delay, edge_s=delay,
                         hosted=T([[True, True, True, False]]), served=T([[True, True, False, False]]),
                         timed_out=T([[False, False, True, False]]), delay_s=delay,
                         energy_j=T([[1.0, 2.0, 3.0, 0.0]]), privacy=T([[0.5, 0.5, 1.0, 0.0]]),
                         failure_charge=T([[10.0, 20.0, 40.0, 80.0]]))
    m = slot_metrics(out, T([[0.0, 0.5, 1.0, 1.0]]), CostConfig(mu1=5.0, mu2=5.0, delay_limit_s=3.0))
    assert m["delay_s"].item() == pytest.approx(16.5)
    assert m["deadline_miss_rate"].item() == pytest.approx(0.75)
    assert (m["success_rate"].item(), m["timeout_rate"].item(), m["cache_miss_rate"].item()) == (0.5, 0.25, 0.25)
    assert m["energy_j"].item() == pytest.approx(1.5) and m["privacy_cost"].item() == pytest.approx(0.5)
    assert m["user_cost"].item() == pytest.approx(5 * 0.5 + 5 * 1.5)
    assert m["served_user_cost"].item() == pytest.approx((5 * 1.0 + 5 * 3.0) / 2)   # served users only
    assert m["split_depth"].item() == pytest.approx(0.625)
    assert m["charged_cost"].item() == pytest.approx((5 * 1.5 + 5 * 2.5 + 40.0 + 80.0) / 4)   # failures: C^fail


def test_the_failure_charge_by_hand():
    # C^fail = μ1 · 1.25 · 1 · 2 · 0.12 + μ2 · (1e-10 · 2 · (2e9 + 1e9) + 2 · 30) = 5 · 0.3 + 5 · 60.6
    out = _outcome(uplink_bps=1.6e4, hosted=True)
    assert out.failure_charge.item() == pytest.approx(1.5 + 303.0)


@pytest.mark.parametrize("seed", range(4))
def test_no_served_outcome_costs_more_than_failing_is_charged(seed):
    """Over random servers, splits and shares (shares down to 1e-4, so slow but served outcomes occur), every
    served request costs at most its C^fail: a policy that fails more never looks cheaper in charged_cost."""
    cfg = EnvConfig(num_servers=3, num_users=40, services_per_model=2, slots_per_episode=4, delta_t=2,
                    capacity=CapacityConfig(server_storage_bytes=(1e12, 1e12)))
    env = EdgeEnv(cfg, ServiceCatalog.from_profiles(synthetic_zoo(), 2), num_envs=2, seed=seed)
    env.reset()
    gen = torch.Generator().manual_seed(seed)
    B, J, K, I, Z = env.dims
    env.deploy(torch.ones(B, J, I, dtype=torch.bool))      # every model everywhere: every request can be served
    obs = env.user_observation()
    worst_ratio = 0.0
    for scale in (1.0, 1e-1, 1e-2, 1e-3, 1e-4):
        server = torch.multinomial(obs.server_mask.reshape(-1, J).float(), 1, generator=gen).view(B, K)
        split = torch.multinomial(obs.split_mask.reshape(-1, Z).float(), 1, generator=gen).view(B, K)
        out = env.outcome(server, split, torch.rand(B, J, K, generator=gen) * scale,
                          torch.rand(B, J, K, generator=gen) * scale)
        spent = cfg.cost.mu1 * out.privacy + cfg.cost.mu2 * out.energy_j
        assert out.served.any()
        assert (spent[out.served] <= out.failure_charge[out.served] * (1 + 1e-6)).all()
        worst_ratio = max(worst_ratio, float((spent / out.failure_charge)[out.served].max()))
    assert worst_ratio > 0.05        # the bound is not vacuous: some served requests come near it


def test_delay_quantiles_match_numpy():
    values = torch.rand(3, 1000, generator=torch.Generator().manual_seed(0)) * 30
    q = delay_quantiles(values)
    assert q["delay_median_s"].numpy() == pytest.approx(np.percentile(values.numpy(), 50, axis=-1), rel=1e-6)
    assert q["delay_p95_s"].numpy() == pytest.approx(np.percentile(values.numpy(), 95, axis=-1), rel=1e-6)
