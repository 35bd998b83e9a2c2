"""The PettingZoo wrapper passes the library's own API test and reports eq. 25 / eq. 27 per agent."""

import numpy as np
from pettingzoo.test import parallel_api_test

from optimizer.baselines import EqualShare, PopularityDeployment
from optimizer.config import EnvConfig
from optimizer.env.pettingzoo_env import EdgeParallelEnv
from envtools import tiny_catalog


def _env(**kw):
    cfg = EnvConfig(num_servers=2, num_users=3, services_per_model=1, slots_per_episode=5, delta_t=2, **kw)
    return EdgeParallelEnv(cfg, tiny_catalog(), PopularityDeployment(), EqualShare())


def test_parallel_api_test_passes():
    parallel_api_test(_env(), num_cycles=12)


def test_episode_truncates_and_rewards_match_costs():
    env = _env()
    obs, infos = env.reset(seed=3)
    for i, agent in enumerate(env.possible_agents):
        env.action_space(agent).seed(i)
    assert set(obs) == {"user_0", "user_1", "user_2"}
    first = obs["user_0"]
    assert first["observation"].dtype == np.float32
    assert env.observation_space("user_0")["observation"].shape == first["observation"].shape
    steps = 0
    while env.agents:
        actions = {a: env.action_space(a).sample(mask=obs[a]["action_mask"]) for a in env.agents}
        obs, rewards, terms, truncs, infos = env.step(actions)
        steps += 1
        for a in rewards:
            # eq. 25: a failed request (miss or time-out) earns R^fail = −300 minus what it spent, and
            # τ_k = τ_fail; a served one −μ3 [τ_k − τ̄]_+ minus what it spent (which can exceed 30: a slow
            # upload at 1 W, so a served request may earn less than −300)
            served, delay = infos[a]["served"], infos[a]["cost"]
            assert (delay == 30.0) == (not served)
            assert rewards[a] <= (-10.0 * max(delay - 3.0, 0.0) if served else -300.0) + 1e-4
    assert steps == 5 and all(truncs.values())
