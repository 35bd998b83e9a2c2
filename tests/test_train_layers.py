"""What the trainer reads from the env by name: the published observation layouts match the tensors the
env builds, and the users' own-device features say what the cache lacks and who the device is."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from optimizer.algos.layers import OWN_DEVICE_FEATURES, SPLIT_ESTIMATE_FEATURES, own_features, split_estimates
from optimizer.algos.runner import load_catalog
from optimizer.config import EnvConfig
from optimizer.env import EdgeEnv

FIXTURES = str(Path(__file__).parent / "fixtures" / "profiles")


def _env(**kw) -> EdgeEnv:
    cfg = EnvConfig(num_servers=3, num_users=5, services_per_model=2, slots_per_episode=6, delta_t=2, **kw)
    env = EdgeEnv(cfg, load_catalog(FIXTURES, cfg), num_envs=2, seed=4)
    env.reset(seed=4)
    return env


def test_user_layout_names_the_blocks_the_env_builds():
    for observe_channel in (True, False):
        env = _env(observe_channel=observe_channel)
        B, J, K, I, _ = env.dims
        x = torch.rand(B, J, I) > 0.5
        env.deployment = x
        layout, uo = env.user_local_layout, env.user_observation()
        assert uo.local.shape[-1] == layout.width
        assert torch.equal(uo.local[..., layout.deployment], x.reshape(B, 1, J * I).float().expand(B, K, J * I))
        assert torch.equal(uo.local[..., layout.service].argmax(-1), env.request_service)
        low = env.cfg.input_batch[0]
        assert torch.equal(uo.local[..., layout.input_size].argmax(-1) + low, env.request_batch)
        assert (layout.channel is not None) == observe_channel


def test_deployment_layout_names_demand_and_previous_deployment():
    env = _env()
    B, J, K, I, _ = env.dims
    x = torch.rand(B, J, I) > 0.5
    env.deploy(x & (env.catalog.model_bytes.cumsum(0) <= env.server_storage_bytes.min()).expand(B, J, I))
    obs = env.deployment_observation()
    layout = env.deployment_layout
    assert torch.equal(obs.glob[:, 0, layout.previous].reshape(B, J, I) > 0.5, env.deployment)
    assert obs.local[..., layout.selected].abs().sum() == 0                  # x^st = 0 before decoding


def test_own_features_show_what_the_cache_lacks_and_the_device():
    env = _env()
    B, J, K, I, Z = env.dims
    feats = own_features(env)
    assert feats.shape == (B, K, Z + OWN_DEVICE_FEATURES)
    need = env.catalog.device_param_bytes[env.request_service]                # (B, K, Z)
    expected = torch.log1p(need / 1e6) / 5                                    # empty cache: all of D^U(z)
    assert torch.allclose(feats[..., :Z], expected, atol=1e-6)
    env.cache_bytes.scatter_(2, env.request_service.unsqueeze(-1), need.max(-1, keepdim=True).values)
    assert own_features(env)[..., :Z].abs().max() == 0                          # everything held: nothing lacks
    eps = feats[..., Z]
    assert torch.allclose(eps, torch.log10(env.energy_j_per_flop) + 10, atol=1e-5)
    assert (feats[..., Z:].abs() <= 1.0 + 1e-5).all()                          # Table I ranges map into [−1, 1]


def test_split_estimates_price_each_split_by_eq_10_and_zero_the_invalid_ones():
    """The privacy column is μ1 C^priv / 100 of eq. 10 worked out from the table and the user's own Pre_k,
    D^in (not from the env's outcome code); z = L_i sends nothing and costs no privacy; masked splits are 0."""
    env = _env()
    B, J, K, I, Z = env.dims
    env.deployment = torch.ones(B, J, I, dtype=torch.bool)                      # every service hosted
    uo = env.user_observation()
    feats = split_estimates(env, uo)
    assert feats.shape == (B, K, Z * SPLIT_ESTIMATE_FEATURES)
    feats = feats.view(B, K, Z, SPLIT_ESTIMATE_FEATURES)
    cost = env.cfg.cost
    c = env.catalog
    service = env.request_service
    ssim = c.leakage[service]                                                  # (B, K, Z)
    floor = c.leakage_floor[service].unsqueeze(-1)
    lea = ((ssim - floor) / (1 - floor)).clamp(0, 1)
    lea = torch.where(torch.arange(Z) == 0, torch.ones_like(lea), lea)        # z = 0: the raw input (Lea 1)
    pre = env.privacy_pref.unsqueeze(-1)
    by_hand = cost.mu1 * (cost.alpha1 + cost.alpha2 * pre) * lea * env.request_batch.unsqueeze(-1).float() \
        * c.raw_input_bytes[service].unsqueeze(-1) * cost.privacy_bytes_scale / 100
    valid = uo.split_mask
    deepest = valid.long().sum(-1, keepdim=True) - 1
    check = valid & (torch.arange(Z) < deepest)                               # z = L_i sends nothing: 0
    assert torch.allclose(feats[..., 0][check], by_hand[check], rtol=1e-4)
    assert (feats[..., 0].gather(-1, deepest) == 0).all()
    assert (feats[~valid] == 0).all()
    assert (feats[..., 2][valid] > 0).all()                                  # log(1 + τ/τ̄) of a real delay


def test_stored_slot_split_gives_the_networks_the_same_numbers_as_the_full_observation():
    """The rollout keeps vec(X) once per slot (SlotSplit); the actor's logits and the critics' values
    computed from it must equal those from the env's full observation, channel and split heads included."""
    from optimizer.algos.agents import EnvDims, build_agents
    from optimizer.algos.ablations import get_spec
    from optimizer.algos.config import TrainConfig
    from optimizer.policies.common import SlotSplit

    env = _env(observe_channel=True)
    dims = EnvDims.from_env(env, observe_own=True, observe_splits=True)
    torch.manual_seed(0)
    agents = build_agents(get_spec("hc-mappo-l"), TrainConfig(hidden_user=16), dims, torch.device("cpu"),
                          env.catalog.model_bytes)
    env.deployment = torch.rand(env.deployment.shape) > 0.5
    uo = env.user_observation()
    full = agents.user_layer.local(env, uo)
    stored = agents.user_layer.stored_form(full)
    assert isinstance(stored, SlotSplit)
    a, b = dims.shared_cols
    assert stored.per_user.shape[-1] == full.shape[-1] - (b - a) and stored.per_slot.shape[-1] == b - a
    channel = env.user_local_layout.channel
    assert torch.equal(stored.columns((channel.start, channel.stop), dims.shared_cols), full[..., channel])
    c, d = dims.split_cols
    assert d == full.shape[-1] and torch.equal(stored.columns(dims.split_cols, dims.shared_cols), full[..., c:d])
    assert agents.user_actor.split_cols == dims.split_cols              # the split head reads them
    for got, want in zip(agents.user_actor.logits(stored), agents.user_actor.logits(full)):
        assert torch.allclose(got, want, atol=1e-6)
    for got, want in zip(agents.user_critics(stored, uo.glob), agents.user_critics(full, uo.glob)):
        assert torch.allclose(got, want, atol=1e-6)
    with pytest.raises(ValueError, match="overlap"):      # the per-slot block has no per-user columns
        stored.columns((a, a + 1), dims.shared_cols)
