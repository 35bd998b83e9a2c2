"""EdgeEnv: seeding, batched = singles, masks keep C4–C7, shapes, misuse refused."""

import pytest
import torch

from optimizer import baselines as bl
from optimizer.config import EnvConfig
from optimizer.env import EdgeEnv, deployment_fit_mask, rng
from optimizer.env.synthetic import synthetic_zoo
from optimizer.env import ServiceCatalog
from optimizer.evaluate import run_slot
from envtools import tiny_env


def _lowbias32_reference(x: int) -> int:
    """Chris Wellons' lowbias32 in plain Python integers (independent of the torch version)."""
    x ^= x >> 16
    x = (x * 0x7FEB352D) & 0xFFFFFFFF
    x ^= x >> 15
    x = (x * 0x846CA68B) & 0xFFFFFFFF
    return x ^ (x >> 16)


def test_hash_matches_plain_integer_reference():
    xs = [0, 1, 2, 12345, 0xFFFFFFFF, 0x80000000, 0xDEADBEEF]
    assert rng.lowbias32(torch.tensor(xs)).tolist() == [_lowbias32_reference(x) for x in xs]


def test_extreme_hashes_stay_strictly_inside_the_unit_interval():
    """The largest hash once rounded to exactly 1.0 in float32, so ndtri gave +inf shadowing, a zero
    channel gain and −inf in the user observation (a training run died of it at iteration 183)."""
    bits = torch.tensor([0, 255, 0xFFFFFEFF, 0xFFFFFF00, 0xFFFFFFFF])
    u = rng.unit_interval(bits)
    assert u.dtype == torch.float32
    assert (u > 0).all() and (u < 1).all()
    assert u[0].item() == 2.0 ** -25 and u[-1].item() == 1.0 - 2.0 ** -24
    assert torch.isfinite(rng.normal(u)).all()
    assert rng.normal(u)[-1].item() == pytest.approx(5.3, abs=0.1)     # Φ⁻¹(1 − 2⁻²⁴) ≈ 5.33


def test_uniforms_look_uniform():
    u = rng.uniform(rng.copy_keys(torch.tensor([1, 2])), 20000)
    assert 0 < u.min() and u.max() < 1
    assert u.mean().item() == pytest.approx(0.5, abs=0.01)
    assert u.var().item() == pytest.approx(1 / 12, abs=0.003)
    # 10 equal bins: chi-square with 9 dof; 40 is far beyond its 99.99 % quantile (≈ 33.7)
    counts = torch.histc(u[0], bins=10, min=0, max=1)
    assert ((counts - 2000) ** 2 / 2000).sum().item() < 40
    assert not torch.equal(u[0], u[1])
    assert torch.corrcoef(torch.stack([u[0, :-1], u[0, 1:]]))[0, 1].abs() < 0.03


def _rollout(env, slots, seed):
    env.reset(seed=seed)
    dep, user, alloc = bl.PopularityDeployment(), bl.Greedy(), bl.EqualShare()
    out = []
    for _ in range(slots):
        res = run_slot(env, dep, user, alloc)
        out.append((res.user_reward.clone(), res.user_cost.clone(), res.dep_reward.clone(),
                    env.user_observation().local.clone()))
    return out


def _synthetic_env(num_envs, seed):
    cfg = EnvConfig(num_servers=3, num_users=6, services_per_model=1, slots_per_episode=8, delta_t=3)
    return EdgeEnv(cfg, ServiceCatalog.from_profiles(synthetic_zoo(), 1), num_envs=num_envs, seed=seed)


def test_batched_equals_single_envs_with_the_same_seeds():
    seeds = [11, 12, 13]
    batched = _rollout(_synthetic_env(3, seeds), 7, seeds)
    for b, s in enumerate(seeds):
        single = _rollout(_synthetic_env(1, [s]), 7, [s])
        for slot_b, slot_s in zip(batched, single):
            for tb, ts in zip(slot_b, slot_s):
                torch.testing.assert_close(tb[b:b + 1], ts, rtol=1e-5, atol=1e-6)


def test_deterministic_under_a_seed_and_new_episodes_differ():
    a = _rollout(_synthetic_env(2, 5), 4, 5)
    b = _rollout(_synthetic_env(2, 5), 4, 5)
    c = _rollout(_synthetic_env(2, 6), 4, 6)
    for x, y in zip(a, b):
        for tx, ty in zip(x, y):
            assert torch.equal(tx, ty)
    assert not torch.equal(a[0][3], c[0][3])
    env = _synthetic_env(1, 5)
    env.reset(seed=5)
    first = env.user_xy.clone()
    env.reset()
    assert not torch.equal(first, env.user_xy)
    env.reset(seed=5)
    assert torch.equal(first, env.user_xy)


def test_random_actions_within_masks_never_break_c4_to_c7():
    env = _synthetic_env(4, 0)
    gen = torch.Generator().manual_seed(0)
    B, J, K, I, Z = env.dims
    for episode in range(2):
        env.reset(seed=episode)
        for t in range(env.cfg.slots_per_episode):
            if env.deployment_due:
                obs = env.deployment_observation()
                x = torch.zeros(B, J, I, dtype=torch.bool)
                for _ in range(I):              # random auto-regressive fill through the fit mask
                    fit = deployment_fit_mask(obs.storage_bytes, obs.model_bytes, x)
                    pick = torch.multinomial(fit.float().view(-1, I) + 1e-12, 1, generator=gen).view(B, J)
                    x |= torch.nn.functional.one_hot(pick, I).bool() & fit
                env.deploy(x)
                used = (env.deployment * env.catalog.model_bytes).sum(-1)
                assert (used <= env.server_storage_bytes).all()                       # C7
            uo = env.user_observation()
            assert uo.server_mask.any(-1).all()
            server = torch.multinomial(uo.server_mask.reshape(-1, J).float(), 1, generator=gen).view(B, K)
            split = torch.multinomial(uo.split_mask.reshape(-1, Z).float(), 1, generator=gen).view(B, K)
            ao = env.allocation_observation(server, split)
            assert (ao.assoc_mask.sum(1) == 1).all()                                  # C4
            raw = torch.randn(2, B, J, K, generator=gen) * 2                          # sums > 1, negatives
            for share in raw:
                total = env.normalise_shares(share, ao.assoc_mask).sum(-1)
                assert (total <= 1 + 1e-5).all()                                      # C5, C6
            res = env.step(server, split, raw[0], raw[1])
            assert (res.user_cost <= env.cfg.reward.tau_fail_s).all()
            served_cost = res.metrics.pop("served_user_cost")        # NaN exactly where nobody was served
            assert torch.equal(served_cost.isfinite(), res.served.any(-1))
            assert all(torch.isfinite(v).all() for v in res.metrics.values())


def test_observation_shapes_and_period_rewards():
    env = tiny_env(num_envs=2)             # J = 2, K = 3, I = 2, Z = 3, ΔT = 2, 6 slots
    env.reset()
    B, J, K, I, Z = env.dims
    assert (B, J, K, I, Z) == (2, 2, 3, 2, 3)
    dep = env.deployment_observation()
    assert dep.local.shape == (B, J, 3 * I) and dep.glob.shape == (B, J, 3 * I + J * I)
    uo = env.user_observation()
    assert uo.local.shape == (B, K, I + 16 + J * I + J) and uo.glob.shape == (B, 2 * K + J * I)
    assert uo.split_mask.shape == (B, K, Z)
    assert bool(env.deployment_due)
    closing = []
    for t in range(6):
        res = run_slot(env, bl.PopularityDeployment(), bl.EdgeOnly(), bl.EqualShare())
        closing.append(bool((res.dep_reward != 0).any()))
        assert bool(res.truncated.all()) == (t == 5)
    assert closing == [False, True, False, True, False, True]
    with pytest.raises(RuntimeError, match="reset"):
        env.step(*(torch.zeros(B, K, dtype=torch.long),) * 2, torch.ones(B, J, K), torch.ones(B, J, K))
    # after a period, eq. 14's shares: per copy r sums to 1 over services
    env.reset()
    for _ in range(2):
        run_slot(env, bl.PopularityDeployment(), bl.EdgeOnly(), bl.EqualShare())
    r = env.deployment_observation().local[:, 0, :I]
    torch.testing.assert_close(r.sum(-1), torch.ones(B))


def test_misuse_is_refused():
    env = tiny_env()
    env.reset()
    env.server_storage_bytes = torch.tensor([[1.5e6, 5e9]])
    with pytest.raises(ValueError, match="C7"):
        env.deploy(torch.tensor([[[True, True], [False, False]]]))     # 1.1e6 + 2e6 > 1.5e6
    env.request_service = torch.tensor([[1, 1, 1]])                   # tiny_b: L = 1
    share = torch.ones(1, 2, 3)
    with pytest.raises(ValueError, match="split"):
        env.step(torch.zeros(1, 3, dtype=torch.long), torch.full((1, 3), 2), share, share)
    with pytest.raises(ValueError, match="server"):
        env.step(torch.full((1, 3), 2), torch.zeros(1, 3, dtype=torch.long), share, share)


def test_truncation_shows_the_next_slot_for_bootstrapping():
    # The critics bootstrap from o_T: after the last slot of an 8-slot episode the env must show the
    # requests and channel that slot 8 of a longer episode draws (same seed), not slot 7's again.
    def env(slots):
        cfg = EnvConfig(num_servers=3, num_users=6, services_per_model=1, slots_per_episode=slots, delta_t=3)
        return EdgeEnv(cfg, ServiceCatalog.from_profiles(synthetic_zoo(), 1), num_envs=1, seed=[5])

    short, longer = env(8), env(12)
    _rollout(short, 8, [5])
    seen_by_longer = [slot[3] for slot in _rollout(longer, 8, [5])]   # observations after each step
    assert bool(short.truncated_flag)
    assert torch.equal(short.request_service, longer.request_service)
    assert torch.equal(short.channel_gain, longer.channel_gain)
    assert torch.equal(short.user_observation().local, seen_by_longer[-1])        # o_8
    assert not torch.equal(short.user_observation().local, seen_by_longer[-2])    # not o_7 again
