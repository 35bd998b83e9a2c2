"""Defense options in the environment (``env.defenses``): hand-made option records, values by hand,
nothing changes when off, failing still never pays, and the Lagrangian heuristic takes a dominating option."""

from __future__ import annotations

import copy
import json

import pytest
import torch

from optimizer.baselines import LagrangianUser
from optimizer.config import CostConfig, EnvConfig
from optimizer.env import EdgeEnv, ServiceCatalog
from optimizer.env.synthetic import synthetic_zoo
from envtools import FIXTURES


def _record(z, defense, strength, seed, macs_dev, macs_srv, sent, ssim, drop):
    return {"split": z, "defense": defense, "strength": strength, "seed": seed, "device_macs": macs_dev,
            "server_macs": macs_srv, "sent_bytes": sent, "leakage": {"ssim": ssim}, "accuracy_drop": drop}


def _with_options(table: dict, records: list[dict], weights=None, image_size=None) -> dict:
    table = copy.deepcopy(table)
    meta = {"weights": weights if weights is not None else (table.get("leakage_meta") or {}).get("weights"),
            "image_size": image_size if image_size is not None else (table.get("leakage_meta") or {}).get("image_size")}
    table["defenses"] = {"schema": 1, "history": [], "sets": {"k": {"meta": meta, "records": {
        f"z{r['split']}/{r['defense']}/{r['strength']:g}/seed{r['seed']}": r for r in records}}}}
    return table


def _tiny() -> dict:
    return {n: json.loads((FIXTURES / f"{n}.json").read_text()) for n in ("tiny_a", "tiny_b")}


def test_options_become_columns_by_hand():
    tables = _tiny()
    tables["tiny_a"] = _with_options(tables["tiny_a"], [
        _record(1, "quantize", 4, 0, 1e9, 5e8, 1000, 0.30, 0.02),
        _record(1, "quantize", 4, 1, 1e9, 5e8, 1000, 0.20, 0.04),
        _record(1, "none", 0, 0, 1e9, 5e8, 8000, 0.5, 0.0),          # the plain split: not repeated
        _record(1, "noise", 2, 0, 1e9, 5e8, 8000, 0.10, -0.01)])     # a gain is never paid
    cat = ServiceCatalog.from_profiles(tables, 1, defenses=True)
    a = cat.service_names.index("tiny_a#0")
    assert cat.choice_labels[0] == ("0", "1", "2", "z1:noise@2", "z1:quantize@4")
    assert cat.max_splits == 5 and cat.split_valid[a].tolist() == [True] * 5
    assert cat.choice_split[a].tolist() == [0, 1, 2, 1, 1]
    assert cat.device_work[a, 4].item() == 2e9 and cat.server_work[a, 4].item() == 1e9      # FLOPs = 2 MACs
    assert cat.uplink_bytes[a, 4].item() == 1000
    assert cat.leakage[a, 4].item() == pytest.approx(0.25) and cat.accuracy_drop[a, 4].item() == pytest.approx(0.03)
    assert cat.accuracy_drop[a, 3].item() == 0.0 and cat.accuracy_drop[a, :3].tolist() == [0, 0, 0]
    assert cat.device_param_bytes[a, 4].item() == cat.device_param_bytes[a, 1].item()
    b = cat.service_names.index("tiny_b#0")
    assert cat.split_valid[b].tolist() == [True, True, False, False, False]
    assert cat.choice_split[b].tolist() == [0, 1, 1, 1, 1] and cat.device_work[b, 4].item() == 4e9  # pads z = L
    assert cat.defended[a].tolist() == [False, False, False, True, True]


def test_an_option_of_other_weights_or_size_is_not_offered():
    tables = _tiny()
    tables["tiny_a"] = _with_options(tables["tiny_a"], [_record(1, "quantize", 4, 0, 1e9, 5e8, 1000, 0.3, 0.0)],
                                     weights="other.pt")
    assert ServiceCatalog.from_profiles(tables, 1, defenses=True).max_splits == 3


def _env(zoo, defenses: bool, seed: int = 0, **cost) -> EdgeEnv:
    cfg = EnvConfig(num_servers=3, num_users=8, slots_per_episode=4, delta_t=2, services_per_model=1,
                    defenses=defenses, cost=CostConfig(**cost))
    return EdgeEnv(cfg, ServiceCatalog.from_profiles(zoo, 1, defenses=defenses), num_envs=2, seed=seed)


def _zoo_with_lenet7_options() -> dict:
    zoo = synthetic_zoo()
    t = zoo["lenet7"]
    z, s = 2, t["splits"][2]
    zoo["lenet7"] = _with_options(t, [
        _record(z, "quantize", 1, 0, s["device_macs"], s["server_macs"], s["uplink_bytes"] // 32, 0.0, 0.0),
        _record(z, "noise", 4, 0, s["device_macs"], s["server_macs"], s["uplink_bytes"], 0.05, 0.5)])
    return zoo


def _play(env: EdgeEnv, slots: int = 4) -> list[torch.Tensor]:
    env.reset()
    out = []
    gen = torch.Generator().manual_seed(1)
    B, J, K, I, Z = env.dims
    for _ in range(slots):
        obs = env.user_observation
        server = torch.randint(0, J, (B, K), generator=gen)
        split = torch.minimum(torch.randint(0, 3, (B, K), generator=gen),
                              env.catalog.num_splits[env.request_service])
        res = env.step(server, split, torch.full((B, J, K), 1 / K), torch.full((B, J, K), 1 / K))
        out += [res.user_reward, res.charged_cost, res.metrics["split_depth"]]
    return out


def test_off_is_bit_identical_and_a_table_block_changes_nothing():
    plain = _play(_env(synthetic_zoo(), False))
    with_block = _play(_env(_zoo_with_lenet7_options(), False))
    on_without_options = _play(_env(synthetic_zoo(), True))
    for a, b, c in zip(plain, with_block, on_without_options):
        assert torch.equal(a, b) and torch.equal(a, c)


def test_an_option_is_charged_its_accuracy_and_sends_its_bytes():
    env = _env(_zoo_with_lenet7_options(), True)
    env.reset()
    B, J, K, I, Z = env.dims
    lenet = env.catalog.service_names.index("lenet7#0")
    env.request_service = torch.full((B, K), lenet)
    labels = env.catalog.choice_labels[env.catalog.model_names.index("lenet7")]
    noise, quant = labels.index("z2:noise@4"), labels.index("z2:quantize@1")
    server = torch.zeros(B, K, 1, dtype=torch.long).expand(B, K, 3)
    split = torch.tensor([2, noise, quant]).expand(B, K, 3)
    est = env.estimate_outcome(server, split, torch.full((B, J), float(K)))
    batch = env.request_batch.float()
    hosted = est.hosted[..., 1]
    expect = torch.where(hosted, 100.0 * batch * 0.5, torch.zeros_like(batch))
    assert torch.allclose(est.accuracy_cost[..., 1], expect)                       # ω_acc · D^in · Δacc
    assert (est.accuracy_cost[..., [0, 2]] == 0).all()
    assert (est.upload_s[..., 2] <= est.upload_s[..., 0] / 31).all()               # 1/32 of the bytes
    assert torch.equal(est.privacy[..., 2], torch.zeros_like(batch))                # SSIM 0: no privacy cost
    spent = est.spent(env.cfg.cost)
    assert (torch.where(est.served, spent, torch.zeros_like(spent)) <= est.failure_charge + 1e-3).all()


def test_failing_never_pays_with_options():
    """Every served candidate of every column costs at most the request's C^fail, over random slots."""
    env = _env(_zoo_with_lenet7_options(), True, seed=3)
    env.reset()
    B, J, K, I, Z = env.dims
    for _ in range(3):
        server = torch.arange(J).repeat_interleave(Z).expand(B, K, J * Z)
        split = torch.arange(Z).repeat(J).expand(B, K, J * Z)
        valid = env.catalog.split_valid[env.request_service].repeat(1, 1, J)
        est = env.estimate_outcome(server, split, torch.full((B, J), K / J))
        spent = est.spent(env.cfg.cost)
        assert (torch.where(est.served & valid, spent, torch.zeros_like(spent)) <= est.failure_charge * (1 + 1e-6)).all()
        env.step(torch.zeros(B, K, dtype=torch.long), torch.zeros(B, K, dtype=torch.long),
                 torch.full((B, J, K), 1 / K), torch.full((B, J, K), 1 / K))


def test_the_lagrangian_heuristic_takes_a_dominating_option():
    """1-bit quantisation at split 2 with SSIM 0 and no accuracy cost beats split 2 itself on every count; with
    privacy priced high (raw images cost 10³× the default) users take it, and never the plain split 2."""
    env = _env(_zoo_with_lenet7_options(), True, privacy_bytes_scale=1.5e-2)
    env.reset()
    env.deployment[:] = True                                    # every server hosts it: no candidate misses
    B, J, K, I, Z = env.dims
    lenet = env.catalog.service_names.index("lenet7#0")
    env.request_service = torch.full((B, K), lenet)
    labels = env.catalog.choice_labels[env.catalog.model_names.index("lenet7")]
    _, split = LagrangianUser(lam=0.0).act(env, env.user_observation())
    assert not (split == 2).any()
    quant = labels.index("z2:quantize@1")
    assert (split == quant).any()
