"""GAE against hand-computed numbers (with time-limit bootstrapping), the Lagrange multiplier,
running statistics against numpy, and the PPO losses' shape checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from optimizer.algos import ppo
from optimizer.algos.gae import gae, next_values_from
from optimizer.algos.lagrange import LagrangeMultiplier, PIDLagrangeMultiplier
from optimizer.algos.normalisers import RunningMeanStd

GAMMA, LAM = 0.9, 0.8


def _run(rewards, values, bootstrap, end, terminated):
    t = lambda x, dt=torch.float64: torch.tensor(x, dtype=dt)
    v = t(values)
    return gae(t(rewards), v, next_values_from(v, t(bootstrap)), t(end, torch.bool),
               t(terminated, torch.bool), GAMMA, LAM)


def test_gae_bootstraps_at_time_limit():
    # δ2 = 3 + 0.9·2.0 − 1.5 = 3.3 ; δ1 = 2 + 0.9·1.5 − 1.0 = 2.35 ; δ0 = 1 + 0.9·1.0 − 0.5 = 1.4
    # A2 = 3.3 ; A1 = 2.35 + 0.72·3.3 = 4.726 ; A0 = 1.4 + 0.72·4.726 = 4.80272
    adv, ret = _run([1, 2, 3], [0.5, 1.0, 1.5], 2.0, [0, 0, 1], [0, 0, 0])
    assert adv.tolist() == pytest.approx([4.80272, 4.726, 3.3])
    assert ret.tolist() == pytest.approx([5.30272, 5.726, 4.8])


def test_gae_does_not_bootstrap_a_true_termination():
    # δ2 = 3 − 1.5 = 1.5 ; A1 = 2.35 + 0.72·1.5 = 3.43 ; A0 = 1.4 + 0.72·3.43 = 3.8696
    adv, _ = _run([1, 2, 3], [0.5, 1.0, 1.5], 2.0, [0, 0, 1], [0, 0, 1])
    assert adv.tolist() == pytest.approx([3.8696, 3.43, 1.5])


def test_gae_cuts_the_trace_between_episodes_but_bootstraps_the_first():
    # episode 1 = steps 0–1 truncated after step 1 (state reached has value 4.0, stored as V'_1),
    # episode 2 = steps 2–3 truncated after step 3 with bootstrap 1.0.
    rewards = torch.tensor([1.0, 1.0, 2.0, 0.0], dtype=torch.float64)
    values = torch.tensor([0.0, 1.0, 2.0, 3.0], dtype=torch.float64)
    next_values = torch.tensor([1.0, 4.0, 3.0, 1.0], dtype=torch.float64)
    end = torch.tensor([False, True, False, True])
    adv, _ = gae(rewards, values, next_values, end, torch.zeros(4, dtype=torch.bool), GAMMA, LAM)
    # δ3 = 0 + 0.9 − 3 = −2.1 ; δ2 = 2 + 2.7 − 2 = 2.7 → A2 = 2.7 + 0.72·(−2.1) = 1.188
    # δ1 = 1 + 3.6 − 1 = 3.6 (no A2 carried) ; δ0 = 1 + 0.9 − 0 = 1.9 → A0 = 1.9 + 0.72·3.6 = 4.492
    assert adv.tolist() == pytest.approx([4.492, 3.6, 1.188, -2.1])


def test_gae_works_per_agent_and_rejects_mismatched_shapes():
    rewards = torch.ones(4, 2, 3)
    values = torch.zeros(4, 2, 3)
    end = torch.zeros(4, 2, 3, dtype=torch.bool)
    end[-1] = True
    adv, _ = gae(rewards, values, next_values_from(values, torch.zeros(2, 3)), end, torch.zeros_like(end),
                 GAMMA, LAM)
    # with V = 0: A_t = Σ_l (γλ)^l r_{t+l}: A_3 = 1, A_2 = 1.72, A_1 = 1 + 0.72·1.72 = 2.2384
    assert adv[:, 0, 0].tolist() == pytest.approx([1 + 0.72 * 2.2384, 2.2384, 1.72, 1.0])
    with pytest.raises(ValueError):
        gae(rewards, values[:, :, :1], values, end, end, GAMMA, LAM)


def test_lambda_rises_when_violated_falls_otherwise_and_stays_in_bounds():
    lam = LagrangeMultiplier(value=0.01, lr=0.01, upper=100.0)
    assert lam.update(measured_cost=5.0, limit=3.0) == pytest.approx(0.03)     # 0.01 + 0.01·2
    assert lam.update(measured_cost=4.0, limit=3.0) == pytest.approx(0.04)
    assert lam.update(measured_cost=2.0, limit=3.0) == pytest.approx(0.03)
    assert lam.update(measured_cost=0.0, limit=3.0) == 0.0                     # projected at 0
    for _ in range(5):
        lam.update(measured_cost=1e6, limit=3.0)
    assert lam.value == 100.0                                                  # clipped at 100
    pid = PIDLagrangeMultiplier(value=0.01, kp=0.1, ki=0.01, kd=0.1, upper=100.0)
    values = [pid.update(c, 3.0) for c in (5, 6, 7, 1e9, 0, 0, 0, 0)]
    assert values[1] > values[0] and all(0 <= v <= 100 for v in values)
    assert values[3] == 100.0 and values[-1] < values[-2] < values[3]


def test_running_mean_std_matches_numpy():
    rng = np.random.default_rng(0)
    chunks = [rng.normal(3.0, 2.0, size=(n, 4)) for n in (5, 17, 1, 40)]
    stats = RunningMeanStd(shape=(4,))
    for chunk in chunks:
        stats.update(torch.from_numpy(chunk))
    allx = np.concatenate(chunks)
    assert np.allclose(stats.mean.numpy(), allx.mean(0))
    assert np.allclose(stats.var.numpy(), allx.var(0))
    x = torch.from_numpy(allx)
    assert torch.allclose(stats.denormalise(stats.normalise(x)), x)


def test_ppo_losses_check_shapes_and_clip():
    with pytest.raises(ValueError):
        ppo.value_loss(torch.zeros(8, 1), torch.zeros(8))                     # the (B,1)-vs-(B,) trap
    logp_old = torch.zeros(4)
    logp_new = torch.log(torch.tensor([1.0, 1.5, 0.5, 1.1]))
    adv = torch.tensor([1.0, 1.0, -1.0, -1.0])
    loss, info = ppo.clipped_surrogate(logp_new, logp_old, adv, clip=0.2)
    # min(ρA, clip(ρ)A): 1·1, min(1.5, 1.2) = 1.2, min(−0.5, −0.8) = −0.8, min(−1.1, −1.1) = −1.1
    assert loss.item() == pytest.approx(-(1.0 + 1.2 - 0.8 - 1.1) / 4)
    assert float(info["clip_frac"]) == pytest.approx(0.5)
    order = torch.cat(list(ppo.minibatches(10, 3, torch.Generator().manual_seed(0))))
    assert sorted(order.tolist()) == list(range(10))


def _closed_loop(multiplier, iterations=400, limit=3.0):
    """A policy whose mean delay follows f(λ) = 2 + 4 / (1 + 2λ) with a lag (feasible: f(1.5) = τ̄ = 3)."""
    delay, values = 6.0, []
    for _ in range(iterations):
        delay += 0.3 * (2.0 + 4.0 / (1.0 + 2.0 * multiplier.value) - delay)
        values.append(multiplier.update(delay, limit))
    return delay, values


def test_pid_lambda_settles_on_a_feasible_case():
    pid = PIDLagrangeMultiplier(value=0.01, kp=1.0, ki=0.05, kd=0.0, upper=100.0, normalised=True)
    delay, values = _closed_loop(pid)
    assert delay == pytest.approx(3.0, abs=0.05)                    # the limit is met, not overshot far
    assert max(values[-50:]) - min(values[-50:]) < 0.05               # λ settled ...
    assert values[-1] == pytest.approx(1.5, abs=0.15)                 # ... near the λ* that meets τ̄
    assert max(values) < 3.0                                          # and never wound up


def test_pid_integral_cannot_wind_below_zero_or_above_the_cap():
    pid = PIDLagrangeMultiplier(value=0.5, kp=1.0, ki=0.5, kd=0.0, upper=2.0, normalised=True)
    for _ in range(50):
        pid.update(0.0, 3.0)                                          # far inside the limit
    assert pid.integral == 0.0 and pid.value == 0.0
    pid.update(6.0, 3.0)                                              # one violation reacts at once
    assert pid.value == pytest.approx(1.0 + 0.5)                      # k_p e + k_i e, not a buried integral
    for _ in range(50):
        pid.update(1e6, 3.0)
    assert pid.integral == 2.0 and pid.value == 2.0
