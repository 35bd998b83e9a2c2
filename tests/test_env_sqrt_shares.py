"""Square-root shares against the environment's own delays (README "Environment conventions", allocation).

At equal shares a user's edge time is τ^E_k = D^in_k Ω^E_k n_j / f_j and its transfer time is
a_k n_j / B_j with a_k = 8 D^U_k / η^↓_k + 8 D^in_k D^up_k / η^↑_k. So, server by server, the closed-form
shares s_k ∝ √(D^in_k Ω^E_k) and b_k ∝ √a_k are √τ_k / Σ √τ_k of the delays the env reports at equal
shares: an independent check of every term of :func:`optimizer.baselines.sqrt_shares`.
"""

from __future__ import annotations

import pytest
import torch

from optimizer import baselines as bl
from optimizer.config import EnvConfig
from optimizer.env import EdgeEnv, ServiceCatalog
from optimizer.env.synthetic import synthetic_zoo


def _normalised_roots(delay: torch.Tensor, assoc: torch.Tensor) -> torch.Tensor:
    root = delay.sqrt().unsqueeze(1) * assoc                       # (B, J, K)
    return root / root.sum(-1, keepdim=True).clamp_min(1e-30)


@pytest.mark.parametrize("seed", range(3))
def test_sqrt_shares_are_roots_of_the_equal_share_delays(seed):
    cfg = EnvConfig(num_servers=3, num_users=30, services_per_model=2, slots_per_episode=4)
    env = EdgeEnv(cfg, ServiceCatalog.from_profiles(synthetic_zoo(), 2), num_envs=2, seed=seed)
    env.reset()
    B, J, K, I, Z = env.dims
    gen = torch.Generator().manual_seed(seed)
    env.deploy(bl.greedy_fill(torch.rand(B, J, I, generator=gen), env.catalog.model_bytes, env.server_storage_bytes))
    server, split = bl.RandomUser(seed).act(env, env.user_observation())
    obs = env.allocation_observation(server, split)
    equal = env.outcome(server, split, *bl.EqualShare().allocate(env, obs))
    assoc = obs.assoc_mask.float()
    compute, bandwidth = bl.sqrt_shares(env, server, split)
    assert (equal.edge_s > 0).any() and (equal.download_s > 0).any() and (env.request_batch > 1).any()
    expect_compute = _normalised_roots(equal.edge_s, assoc)
    expect_bandwidth = _normalised_roots(equal.download_s + equal.upload_s, assoc)
    assert torch.allclose(compute, expect_compute, rtol=1e-4, atol=1e-6)
    assert torch.allclose(bandwidth, expect_bandwidth, rtol=1e-4, atol=1e-6)
