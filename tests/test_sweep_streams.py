"""Training, calibration and evaluation episodes come from one distribution: a fixed policy's metric means
over each stream agree within their standard errors, while a real change of the environment shows."""

from __future__ import annotations

import numpy as np

from optimizer import baselines
from optimizer.config import CapacityConfig, EnvConfig
from optimizer.env import EdgeEnv, ServiceCatalog
from optimizer.env.synthetic import synthetic_zoo
from optimizer.sweep.streams import StreamMean, largest_gap, stream_means

METRICS = ("delay_s", "user_cost", "split_depth")


def _means(**capacity) -> list:
    cfg = EnvConfig(num_servers=3, num_users=16, services_per_model=2, slots_per_episode=20, delta_t=5,
                    capacity=CapacityConfig(**capacity))
    env = EdgeEnv(cfg, ServiceCatalog.from_profiles(synthetic_zoo(), 2), num_envs=6, seed=0)
    return stream_means(env, baselines.make_baseline("deployment", "popularity"),
                        baselines.make_baseline("user", "greedy"), baselines.make_baseline("allocation", "equal"),
                        episodes=36, eval_seed=4242, train_seed=0, metrics=METRICS)


def test_the_three_streams_agree_within_their_errors_and_a_real_difference_shows():
    same = _means()
    assert {m.stream for m in same} == {"training", "calibration", "evaluation"} and all(m.n == 36 for m in same)
    for metric in METRICS:
        assert largest_gap(same, metric) < 3.0, metric
    slower = [m for m in _means(server_bandwidth_hz=(10e6, 20e6)) if m.stream == "evaluation"]   # 1/5 the spectrum
    mixed = [m for m in same if m.stream != "evaluation"] + slower
    assert largest_gap(mixed, "delay_s") > 5.0


def test_the_gap_is_in_standard_errors():
    rows = [StreamMean("a", "x", 1.0, 0.3, 9), StreamMean("b", "x", 2.0, 0.4, 9)]
    assert largest_gap(rows, "x") == np.float64(1.0 / 0.5)
