"""Eq. 4–12 and 22–27 against numbers worked out by hand on 2 servers, 3 users (tests/fixtures)."""

import math

import pytest
import torch

from optimizer.config import ChannelConfig, CostConfig, RewardConfig
from optimizer.env import channel
from optimizer.env import system_model as sm
from envtools import GAIN, NOISE_W_PER_HZ, pin_capacities, pin_slot, tiny_env

T = torch.tensor


def test_path_loss_gain_and_rate_by_hand():
    cfg = ChannelConfig()
    # d = 100 m, no shadowing: PL = 30 + 10·3.5·log10(100) = 30 + 70 = 100 dB → g = 1e-10
    loss = channel.path_loss_db(T([100.0]), T([0.0]), cfg)
    assert loss.item() == pytest.approx(100.0)
    assert channel.gain_from_db(loss).item() == pytest.approx(1e-10, rel=1e-5)
    # below 1 m the distance is clamped: PL(0.2 m) = PL(1 m) = 30 dB; shadowing adds: 30 + 35·1 + 8 = 73
    assert channel.path_loss_db(T([0.2, 10.0]), T([0.0, 8.0]), cfg).tolist() == pytest.approx([30.0, 73.0])
    # noise: −174 dBm/Hz + 6 dB → 10^(−19.8) W/Hz; σ² for 1 MHz = 1.5849e-14 W
    assert channel.noise_w_per_hz(cfg) * 1e6 == pytest.approx(1.5849e-14, rel=1e-4)
    # 30 dBm = 1 W, 43 dBm = 19.95 W
    assert channel.dbm_to_watt(T([30.0, 43.0])).tolist() == pytest.approx([1.0, 19.953], rel=1e-4)
    # R = B log2(1 + P g / (N0 NF B)); P g chosen so SNR = 3 at B = 1 MHz: R = 1e6 · log2(4) = 2e6 bit/s
    pg = 3 * NOISE_W_PER_HZ * 1e6
    rate = channel.shannon_rate_bps(T([1e6, 0.0]), T([1.0, 1.0]), T([pg, pg]), NOISE_W_PER_HZ)
    assert rate.tolist() == pytest.approx([2e6, 0.0], rel=1e-5)


def test_server_grid():
    # J = 4 → 2 × 2 grid over 1000 m: centres at 250 and 750
    assert channel.server_grid_m(4, 1000.0).tolist() == [[250, 250], [750, 250], [250, 750], [750, 750]]
    # J = 3 → cols = 2, rows = 2: third server at (250, 750)
    assert channel.server_grid_m(3, 1000.0)[2].tolist() == [250, 750]


def test_energy_privacy_cost_and_rewards_by_hand():
    cost, reward = CostConfig(privacy_bytes_scale=1e-6), RewardConfig()   # D_raw in MB in the hand numbers
    # eq. 6: ε D^in Ω^U = 1e-10 · 2 · 2e9 = 0.4 J ; eq. 7: P τ^U2E = 2 W · 0.0064 s = 0.0128 J
    assert sm.compute_energy_j(T(1e-10), T(2.0), T(2e9)).item() == pytest.approx(0.4)
    assert sm.upload_energy_j(T(2.0), T(0.0064)).item() == pytest.approx(0.0128)
    # eq. 10: (0.31 + 1.88·0.5) · 0.5 · 2 · 120000 B · 1e-6 = 1.25 · 0.5 · 2 · 0.12 = 0.15
    assert sm.privacy_cost(T(0.5), T(0.5), T(2.0), T(120000.0), cost).item() == pytest.approx(0.15)
    # eq. 12: 5 · 0.05 + 5 · 0.1 = 0.75
    assert sm.system_cost(T(0.05), T(0.1), cost).item() == pytest.approx(0.75)
    # eq. 25: served, τ = 4 s: −(5·0.15 + 5·0.4128 + 10·(4 − 3)) = −(0.75 + 2.064 + 10) = −12.814
    # unserved with costs (a time-out, charged what it spent): R^fail − 0.75 − 2.064 = −302.814;
    # unserved with no costs (a cache miss): R^fail = −300
    r = sm.user_reward(T([0.15, 0.15, 0.0]), T([0.4128, 0.4128, 0.0]), T([4.0, 30.0, 30.0]),
                       T([True, False, False]), cost, reward)
    assert r.tolist() == pytest.approx([-12.814, -302.814, -300.0])
    # eq. 26: server 0 has users with τ 1 and 3 → −2; server 1 none → 0
    assoc = T([[True, False, True], [False, False, False]])
    assert sm.allocation_reward(T([1.0, 9.0, 3.0]), assoc).tolist() == pytest.approx([-2.0, 0.0])
    # eq. 23: new model of 1.1e6 B at 2e8 bit/s: 8.8e6 / 2e8 = 0.044 s; a kept model costs nothing
    new, old = T([[True, True]]), T([[False, True]])
    assert sm.migration_cost_s(new, old, T([1.1e6, 5e6]), T([2e8])).tolist() == pytest.approx([0.044])
    # eq. 24: 1 · 3 hits − 1 · 0.044 s = 2.956
    assert sm.deployment_reward(T(3.0), T(0.044), reward).item() == pytest.approx(2.956)
    # eq. 5 with a time-out: zero bandwidth → τ^U2E = inf → τ_fail
    assert sm.upload_delay_s(T(1.0), T(400.0), T(0.0)).item() == math.inf
    assert sm.upload_delay_s(T(1.0), T(0.0), T(0.0)).item() == 0.0


def test_one_slot_by_hand():
    env = tiny_env(delta_t=1)            # services: 0 = tiny_a (L = 2), 1 = tiny_b (L = 1)
    env.reset()
    pin_capacities(env)
    env.deploy(T([[[True, False], [False, True]]]))       # server 0 hosts tiny_a, server 1 tiny_b
    pin_slot(env, service=[0, 1, 0], batch=[2, 4, 1], gain=GAIN)
    share = T([[[1.0, 0.0, 0.0], [0.0, 0.5, 0.5]]])
    res = env.step(T([[0, 1, 1]]), T([[1, 0, 0]]), share, share)

    # user 0: tiny_a split 1 at server 0, D^in = 2, whole server
    #   R^E2U = 1e7·log2(16) = 4e7, R^U2E = 1e7·log2(4) = 2e7
    #   τ^E2U = 1e6 B·8 / 4e7 = 0.2 ; τ^U = 2·2e9 / 20e9 = 0.2 ; τ^U2E = 2·8000·8 / 2e7 = 0.0064
    #   τ^E = 2·1e9 / 1e12 = 0.002 → τ = 0.4084 s
    #   e = 1e-10·2·2e9 + 2·0.0064 = 0.4128 J ; C = 1.25·0.5·2·0.12 = 0.15
    #   R = −(5·0.15 + 5·0.4128) = −2.814
    # user 1: tiny_b split 0 at server 1, D^in = 4, half of server 1 (B = 1e7, f = 1e12)
    #   τ^U2E = 4·400·8 / 1e7 = 0.00128 ; τ^E = 4·4e9 / 1e12 = 0.016 → τ = 0.01728 s
    #   e = 1 W · 0.00128 = 0.00128 J ; C = (0.31 + 1.88·0.25)·1·4·400e-6 = 0.78·0.0016 = 0.001248
    #   R = −(5·0.001248 + 5·0.00128) = −0.01264
    # user 2: tiny_a at server 1, which does not host it → τ_fail = 30, R^fail = −300, e = C = 0
    assert res.user_cost[0].tolist() == pytest.approx([0.4084, 0.01728, 30.0], rel=1e-4)
    assert res.user_reward[0].tolist() == pytest.approx([-2.814, -0.01264, -300.0], rel=1e-4)
    assert res.served[0].tolist() == [True, True, False]
    m = {k: v.item() for k, v in res.metrics.items()}
    assert m["energy_j"] == pytest.approx((0.4128 + 0.00128) / 3, rel=1e-4)           # eq. 9
    assert m["privacy_cost"] == pytest.approx((0.15 + 0.001248) / 3, rel=1e-4)        # eq. 11
    assert m["user_cost"] == pytest.approx(5 * 0.151248 / 3 + 5 * 0.41408 / 3, rel=1e-4)  # eq. 12
    assert m["delay_s"] == pytest.approx((0.4084 + 0.01728 + 30) / 3, rel=1e-4)
    assert m["success_rate"] == pytest.approx(2 / 3)
    # eq. 12 over the two served users only (user 2 timed out and costs no energy or privacy)
    assert m["served_user_cost"] == pytest.approx(5 * 0.151248 / 2 + 5 * 0.41408 / 2, rel=1e-4)
    # eq. 26: server 0 → −0.4084 ; server 1 → −(0.01728 + 30) / 2 = −15.00864
    assert res.alloc_reward[0].tolist() == pytest.approx([-0.4084, -15.00864], rel=1e-4)
    # eq. 22–24 with ΔT = 1: hits [1, 1] (user 2's request misses); C^mig = [1.1e6·8/2e8, 2e6·8/2e8]
    #   = [0.044, 0.08] → R^dep = [0.956, 0.92]
    assert res.dep_reward[0].tolist() == pytest.approx([0.956, 0.92], rel=1e-4)
    # user 0 now caches D^U(1) = 1e6 B of tiny_a
    assert env.cache_bytes[0, 0].tolist() == [1e6, 0.0]

    # slot 2: user 0 asks tiny_a again, D^in = 1, split 2 → downloads only 1.1e6 − 1e6 = 1e5 B
    #   τ^E2U = 8e5 / 4e7 = 0.02 ; τ^U = 3e9 / 20e9 = 0.15 ; τ^U2E = 40·8 / 2e7 = 1.6e-5 ; τ^E = 0
    #   τ = 0.170016 s ; e = 1e-10·3e9 + 2·1.6e-5 = 0.300032 J ; Lea(L) = 0 → C = 0
    # users 1, 2 ask tiny_a at server 1 → misses. Same deployment → C^mig = 0, R^dep = [1, 0]
    env.deploy(T([[[True, False], [False, True]]]))
    pin_slot(env, service=[0, 0, 0], batch=[1, 1, 1], gain=GAIN)
    share = T([[[1.0, 0.0, 0.0], [0.0, 0.5, 0.5]]])
    res = env.step(T([[0, 1, 1]]), T([[2, 0, 0]]), share, share)
    assert res.user_cost[0, 0].item() == pytest.approx(0.170016, rel=1e-4)
    assert res.metrics["energy_j"].item() == pytest.approx(0.300032 / 3, rel=1e-4)
    assert res.metrics["privacy_cost"].item() == 0.0
    assert res.metrics["served_user_cost"].item() == pytest.approx(5 * 0.300032, rel=1e-4)   # user 0 only
    assert res.dep_reward[0].tolist() == pytest.approx([1.0, 0.0])
    assert env.cache_bytes[0, 0].tolist() == [1.1e6, 0.0]


def test_shares_are_renormalised_and_unassociated_ignored():
    env = tiny_env()
    env.reset()
    pin_capacities(env)
    env.deploy(T([[[True, False], [False, True]]]))
    pin_slot(env, service=[0, 1, 0], batch=[2, 4, 1], gain=GAIN)
    # server 1 is asked for 1.5 + 0.5 = 2 of its resources: rescaled to 0.75 / 0.25; the 7.0 given to
    # user 0 at server 1 is ignored (user 0 is at server 0)
    share = T([[[1.0, 0.0, 0.0], [7.0, 1.5, 0.5]]])
    res = env.step(T([[0, 1, 1]]), T([[1, 0, 0]]), share, share)
    # user 1: B = 0.75·2e7 = 1.5e7, SNR = 1·G11/(N0NF·1.5e7) = 2/3 → R = 1.5e7·log2(5/3)
    #   τ^U2E = 12800 / (1.5e7·0.736966) = 0.0011579 ; τ^E = 16e9 / 1.5e12 = 0.0106667 → 0.0118246
    assert res.user_cost[0, 1].item() == pytest.approx(0.0118246, rel=1e-4)
    assert res.user_cost[0, 0].item() == pytest.approx(0.4084, rel=1e-4)


def test_lru_cache_evicts_least_recently_used():
    # services_per_model = 2: 0, 1 = tiny_a copies (D^U(1) = 1e6 B), 2, 3 = tiny_b copies (D^U(1) = 2e6 B)
    env = tiny_env(services_per_model=2, delta_t=1)
    env.reset()
    pin_capacities(env)
    env.user_storage_bytes = T([[2.5e6, 1e9, 1e9]])
    x = torch.ones(1, 2, 4, dtype=torch.bool)
    share = torch.full((1, 2, 3), 1.0 / 3)
    held = []
    for service in (0, 1, 2, 1, 1):
        env.deploy(x)
        pin_slot(env, service=[service, 0, 0], batch=[1, 1, 1], gain=GAIN)
        res = env.step(T([[0, 0, 0]]), T([[1, 1, 1]]), share, share)
        held.append(env.cache_bytes[0, 0].tolist())
    # t0: {0: 1e6}; t1: {0: 1e6, 1: 1e6}; t2: 2e6 more = 4e6 > 2.5e6 → evict 0 (oldest) → 3e6, still
    # over → evict 1 → {2: 2e6}; t3: service 1 again (a miss) → 3e6 > 2.5e6 → evict 2 → {1: 1e6}; t4: hit
    assert held == [[1e6, 0, 0, 0], [1e6, 1e6, 0, 0], [0, 0, 2e6, 0], [0, 1e6, 0, 0], [0, 1e6, 0, 0]]
    # the hit at t4 skips the download: τ = τ^U + τ^U2E + τ^E only (no τ^E2U);
    # share 1/3 of server 0: B = 1e7/3, f = 1e12/3. τ^U = 2e9/20e9 = 0.1 ; τ^E = 1e9/(1e12/3) = 0.003
    # uplink SNR = 2·G00/(N0NF·1e7/3) = 9 → R = (1e7/3)·log2(10) ; τ^U2E = 64000 / R = 0.0057798
    assert res.user_cost[0, 0].item() == pytest.approx(0.1 + 0.003 + 0.0057798, rel=1e-4)


def test_macs_switch_halves_the_workload():
    flops, macs = tiny_env(), tiny_env(compute_unit="macs")
    # tiny_a split 1: device 2e9 FLOPs = 1e9 MACs
    assert flops.catalog.device_work[0, 1].item() == 2e9
    assert macs.catalog.device_work[0, 1].item() == 1e9


def test_leakage_above_the_no_information_floor_by_hand():
    ssim = T([[1.0, 0.7, 0.5, 0.3, 0.0], [1.0, 0.9, 0.0, 0.0, 0.0]])
    runs = torch.tensor([[0, 1, 2, 3, 4], [0, 1, 2, 2, 2]])     # service 2 has L = 2 (padded after)
    levels = torch.tensor([4, 2])
    floor = T([0.4, 0.5])
    above = sm.effective_leakage(ssim, floor, runs, levels, "above_floor")
    # (0.7 − 0.4) / 0.6 = 0.5, (0.5 − 0.4) / 0.6 = 1/6, 0.3 below the floor → 0; z = 0 → 1, z ≥ L → 0
    assert above.tolist()[0] == pytest.approx([1.0, 0.5, 1 / 6, 0.0, 0.0])
    assert above.tolist()[1] == pytest.approx([1.0, 0.8, 0.0, 0.0, 0.0])
    assert torch.equal(sm.effective_leakage(ssim, floor, runs, levels, "ssim"), ssim)
