"""Heuristic baselines, the λ bisection, statistics and the evaluate command."""

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from cli import main
from optimizer import baselines as bl
from optimizer.evaluate import delay_upper_bound, run_episodes, summarise
from envtools import FIXTURES, GAIN, pin_capacities, pin_slot, tiny_env

T = torch.tensor


def test_greedy_fill_respects_storage_in_score_order():
    # storage 3: take service 1 (1.5), then 2 (1.0 → 2.5), skip 0 (2.0 → 4.5 > 3), take 3 (0.5 → 3.0)
    x = bl.greedy_fill(T([[[0.1, 0.9, 0.5, 0.0]]]), T([2.0, 1.5, 1.0, 0.5]), T([[3.0]]))
    assert x.tolist() == [[[False, True, True, True]]]


def test_equal_share():
    env = tiny_env()
    env.reset()
    ao = env.allocation_observation(T([[0, 1, 1]]), T([[0, 0, 0]]))
    compute, bandwidth = bl.EqualShare().allocate(env, ao)
    assert compute.tolist() == [[[1.0, 0.0, 0.0], [0.0, 0.5, 0.5]]] and torch.equal(compute, bandwidth)


def _pinned():
    env = tiny_env()
    env.reset()
    pin_capacities(env)
    env.deploy(T([[[True, False], [False, True]]]))       # server 0: tiny_a, server 1: tiny_b
    pin_slot(env, service=[0, 1, 0], batch=[2, 4, 1], gain=GAIN)
    return env


def test_local_edge_and_channel_association():
    env = _pinned()
    uo = env.user_observation()
    # users 0 and 2 want tiny_a: only server 0 hosts it; user 1 wants tiny_b: only server 1
    assert bl.channel_server(env, uo).tolist() == [[0, 1, 0]]
    assert bl.LocalOnly().act(env, uo)[1].tolist() == [[2, 1, 2]]       # L_i
    assert bl.EdgeOnly().act(env, uo)[1].tolist() == [[0, 0, 0]]


def test_greedy_takes_the_deepest_split_meeting_the_limit():
    env = _pinned()
    # user 0 alone on server 0 with n_0 = 2 (users 0, 2), share 1/2: B = 5e6, f = 5e11.
    # With f_k = 2e9: z = 2 needs τ^U = 2·3e9/2e9 = 3 s plus a download > 0 → over 3 s;
    # z = 1: τ^U = 2·2e9/2e9 = 2 s, τ^E2U = 8e6 / (5e6·log2(1 + 30)) = 0.323, τ^U2E = 128000 / (5e6·log2(7))
    # = 0.00912, τ^E = 2e9/5e11 = 0.004 → 2.336 s ≤ 3 → split 1
    env.user_flops = T([[2e9, 50e9, 10e9]])
    server, split = bl.Greedy().act(env, env.user_observation())
    assert server[0, 0].item() == 0 and split[0, 0].item() == 1
    est = env.estimate_outcome(server.unsqueeze(-1), split.unsqueeze(-1), T([[2.0, 1.0]]))
    assert est.delay_s[0, 0, 0].item() == pytest.approx(2.0 + 0.32294 + 0.0091189 + 0.004, rel=1e-3)
    # with a fast device (20 GFLOPS) every split meets 3 s → the deepest, L = 2
    env.user_flops = T([[20e9, 50e9, 10e9]])
    assert bl.Greedy().act(env, env.user_observation())[1][0, 0].item() == 2


def test_lagrangian_minimises_cost_plus_lambda_delay():
    env = _pinned()
    uo = env.user_observation()
    # user 0 (tiny_a, D^in = 2, server 0 shared with user 2 → 1/2: B = 5e6 Hz, f = 5e11):
    #   z = 0: C = 1.25·1·2·0.12 = 0.3, e = 2 W · τ^U2E, τ^U2E = 2·120000·8 / (5e6·log2(7)) = 0.13679
    #          → cost = 5·0.3 + 5·0.27358 = 2.868 ; τ = 0.13679 + 2·3e9/5e11 = 0.14879
    #   z = 2: C = 0, e = 1e-10·2·3e9 + 2·(640/(5e6·log2 7)) = 0.600091 → cost 3.00046;
    #          τ = 8.8e6/(5e6·log2 31) + 0.3 + 4.6e-5 = 0.65529
    #   z = 1: C = 0.15, e = 0.4 + 2·0.0091189 → cost 2.84119 ;
    #          τ = 0.2 + 0.32294 + 0.00912 + 0.004 = 0.53606 (terms as in the greedy test, τ^U = 4e9/20e9)
    # λ = 0 → argmin cost = z = 1 (2.841 < 2.868 < 3.000)
    server, split = bl.LagrangianUser(lam=0.0).act(env, uo)
    assert (server[0, 0].item(), split[0, 0].item()) == (0, 1)
    # λ = 10 → z = 0: 2.868 + 1.4879 = 4.356 < z = 1: 2.841 + 5.361 = 8.202 < z = 2: 3.000 + 6.553
    server, split = bl.LagrangianUser(lam=10.0).act(env, uo)
    assert (server[0, 0].item(), split[0, 0].item()) == (0, 0)


def test_calibration_bisects_lambda():
    # delay(λ) = 10 / (1 + λ) meets 3 s from λ* = 7/3; 8 halvings of log λ on [1, 8] land within 1 %
    cal = bl.calibrate_lagrangian(lambda lam: 10.0 / (1.0 + lam), 3.0, steps=8)
    assert cal.lam == pytest.approx(7 / 3, rel=0.01) and cal.lam >= 7 / 3
    assert bl.calibrate_lagrangian(lambda lam: 1.0, 3.0).lam == 0.0
    assert bl.calibrate_lagrangian(lambda lam: 5.0, 3.0, lam_max=100).lam == 100


def test_summary_statistics_by_hand():
    # [1, 2, 3]: mean 2, s = 1, t_{0.975, 2} = 4.302653 → half-width 4.302653 / √3 = 2.484138
    s = summarise(torch.tensor([1.0, 2.0, 3.0]).numpy())
    assert (s.mean, s.n) == (2.0, 3) and s.ci95 == pytest.approx(2.484138, rel=1e-5)


def test_run_episodes_collects_one_sample_per_copy_episode():
    env = tiny_env(num_envs=2)
    args = (bl.PopularityDeployment(), bl.EdgeOnly(), bl.EqualShare())
    res = run_episodes(env, *args, episodes=3, seed=4)
    assert len(res.samples["delay_s"]) == 3
    again = run_episodes(env, *args, episodes=3, seed=4)
    assert (res.samples["user_cost"] == again.samples["user_cost"]).all()
    assert res.delay_ok == (res.samples["delay_s"].mean() <= 3.0)


def test_evaluate_command(tmp_path):
    out = tmp_path / "res.json"
    args = ["evaluate", "--profiles", str(FIXTURES), "--policy", "all", "--episodes", "2", "--slots", "3",
            "--num-envs", "2", "--set", "env.num_servers=2", "--set", "env.num_users=3",
            "--set", "lagrangian_bisection_steps=1", "--set", "lagrangian_calibration_episodes=1",
            "--out", str(out)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    for name in bl.baseline_names("user"):
        assert name in result.output
    data = json.loads(out.read_text())
    assert [r["policy"] for r in data["results"]] == list(bl.baseline_names("user"))
    assert data["config"]["env"]["num_users"] == 3 and "lambda" in data["results"][-1]


@pytest.mark.parametrize("extra, message", [
    (["--set", "env.bogus=1"], "env.bogus: unknown key"),
    (["--out", "x.txt"], "must end in .json or .csv"),
    (["--set", "env.capacity.server_flops=[-5, 1]"], "env.capacity.server_flops"),
])
def test_evaluate_command_refuses_bad_input(extra, message):
    result = CliRunner().invoke(main, ["evaluate", "--profiles", str(FIXTURES)] + extra)
    assert result.exit_code == 2
    assert message in result.output and "Traceback" not in result.output


def test_deployment_heuristics_rank_by_demand_and_recency():
    env = tiny_env(services_per_model=2)        # services 0, 1: tiny_a (1.1e6 B); 2, 3: tiny_b (2e6 B)
    env.reset()
    env.server_storage_bytes = T([[3.2e6, 3.2e6]])          # room for one tiny_a + one tiny_b at most
    env.last_request_slot = T([[[5, -1, 2, 7], [-1, 4, -1, -1]]])
    obs = env.deployment_observation()
    # LRU, server 0: most recent 3 (t7, 2e6 B), then 0 (t5, 1.1e6 → 3.1e6), 2 no longer fits
    # server 1: 1 (t4), then ties at −1 broken by system-wide recency: 3 (t7) → 3.1e6
    assert bl.LRUDeployment().deploy(env, obs).tolist() == [[[True, False, False, True],
                                                              [False, True, False, True]]]
    # popularity: h_j first. Server 0 saw service 2 most, server 1 service 1
    env.last_period_requests = T([[[1.0, 0.0, 6.0, 0.0], [0.0, 3.0, 0.0, 0.0]]])
    x = bl.PopularityDeployment().deploy(env, env.deployment_observation())
    # server 0: 2 (2e6), then 0 (1.1e6 → 3.1e6). Server 1: 1 (1.1e6), then by system-wide share r:
    # service 2 (6/10) → 3.1e6
    assert x.tolist() == [[[True, False, True, False], [False, True, True, False]]]


def test_evaluate_command_writes_csv(tmp_path):
    out = tmp_path / "res.csv"
    args = ["evaluate", "--profiles", str(FIXTURES), "--policy", "edge-only", "--episodes", "2", "--slots", "2",
            "--set", "env.num_servers=2", "--set", "env.num_users=3", "--out", str(out)]
    assert CliRunner().invoke(main, args).exit_code == 0
    header, row = out.read_text().splitlines()
    columns = header.split(",")
    for name in ("delay_s", "delay_median_s", "delay_p95_s", "deadline_miss_rate", "timeout_rate",
                 "cache_miss_rate", "energy_j", "privacy_cost", "served_user_cost", "split_depth"):
        assert name in columns and name + "_ci95" in columns
    assert row.startswith("edge-only,")


def test_one_episode_prints_n_a_not_nan(tmp_path):
    out = tmp_path / "res.json"
    args = ["evaluate", "--profiles", str(FIXTURES), "--policy", "edge-only", "--episodes", "1", "--slots", "2",
            "--num-envs", "1", "--set", "env.num_servers=2", "--set", "env.num_users=3", "--out", str(out)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "nan" not in result.output.lower() and "± n/a" in result.output
    record = json.loads(out.read_text())["results"][0]          # strict JSON: no NaN
    assert record["delay_s_ci95"] is None and record["delay_s"] is not None


def test_sqrt_share_by_hand():
    # one server, loads a = (4, 1, 0 [not associated]): s ∝ √a = (2, 1) / 3
    load = T([[[4.0, 1.0, 9.0]]])
    assoc = T([[[True, True, False]]])
    assert bl.sqrt_share(load * assoc, assoc).tolist()[0][0] == pytest.approx([2 / 3, 1 / 3, 0.0])
    # Σ a/s: √ shares give (√4 + √1)² = 9, equal shares 4/0.5 + 1/0.5 = 10 (Cauchy–Schwarz)
    assert (4 / (2 / 3) + 1 / (1 / 3)) == pytest.approx(9.0)
    # a server whose users need nothing shares equally
    assert bl.sqrt_share(T([[[0.0, 0.0]]]), T([[[True, True]]])).tolist() == [[[0.5, 0.5]]]


@pytest.mark.parametrize("seed", range(3))
def test_sqrt_shares_never_lose_to_equal_shares_on_edge_compute(seed):
    """Σ_k τ^E_k of each server under the square-root compute shares ≤ under equal shares (the closed
    form is the exact optimum of that sum), and BestShare's summed τ_k never exceeds equal share's."""
    env = tiny_env(num_envs=4, seed=seed, num_users=12)
    env.reset()
    env.deploy(T([[[True, True], [True, True]]] * 4))
    uo = env.user_observation()
    server, split = bl.Greedy().act(env, uo)
    ao = env.allocation_observation(server, split)
    equal = bl.EqualShare().allocate(env, ao)
    root = bl.SqrtShare().allocate(env, ao)
    best = bl.BestShare().allocate(env, ao)
    assoc = ao.assoc_mask.float()

    def per_server(shares, field):
        return (getattr(env.outcome(server, split, *shares), field).unsqueeze(1) * assoc).sum(-1)

    assert (per_server(root, "edge_s") <= per_server(equal, "edge_s") * (1 + 1e-5) + 1e-9).all()
    assert (per_server(best, "delay_s") <= per_server(equal, "delay_s") * (1 + 1e-5) + 1e-9).all()
    assert ((root[0].sum(-1) - 1).abs() < 1e-5)[assoc.sum(-1) > 0].all()    # each busy server gives out all


def test_delay_upper_bound_by_hand():
    # samples 2, 4: mean 3, s = √2, t_{0.95, 1} = 6.3138 → 3 + 6.3138 · √2 / √2
    assert delay_upper_bound(np.array([2.0, 4.0])) == pytest.approx(3 + 6.3138, abs=1e-3)
    assert delay_upper_bound(np.array([2.5])) == 2.5
