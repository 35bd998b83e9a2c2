"""Warm start by behaviour cloning (algos/warm_start.py): the deployment demonstrations are exactly the
popularity heuristic's decisions, written as the in-turn policy's ordered picks; cloning makes the
in-turn policy decode those decisions; the user clone raises the likelihood of the heuristic's choices.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from optimizer.algos.config import TrainConfig
from optimizer.algos.hc_mappo_l import Trainer
from optimizer.algos.runner import load_catalog
from optimizer.algos.warm_start import DeploymentDemos, warm_start
from optimizer.baselines import PopularityDeployment, greedy_fill
from optimizer.config import CapacityConfig, EnvConfig
from optimizer.policies.deployment_in_turn import DeploymentState
from common.errors import UserInputError

FIXTURES = str(Path(__file__).parent / "fixtures" / "profiles")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_demonstration_is_the_popularity_fill_in_its_order():
    # one server, sizes 3, 3, 1, 1 and storage 5; scores rank services 1, 0, 3, 2:
    # 1 is taken (3), 0 no longer fits (3 + 3 > 5), then 3 and 2 (1 + 1): picks 1, 3, 2
    sizes = torch.tensor([3.0, 3.0, 1.0, 1.0])
    state = DeploymentState(request_share=torch.zeros(1, 4), server_share=torch.zeros(1, 1, 4),
                            previous=torch.zeros(1, 1, 4, dtype=torch.bool), storage_bytes=torch.tensor([[5.0]]),
                            model_bytes=sizes)
    score = torch.tensor([[[0.3, 0.4, 0.1, 0.2]]])
    demos = DeploymentDemos()
    chosen = demos.add(state, score)
    assert chosen.tolist() == [[[False, True, True, True]]]
    assert torch.equal(chosen, greedy_fill(score, sizes, torch.tensor([[5.0]])))
    assert demos.actions[0][0, 0, :3].tolist() == [1, 3, 2]
    assert demos.active[0][0, 0].tolist() == [True, True, True, False]


def test_ties_follow_greedy_fill_on_random_cases():
    gen = torch.Generator().manual_seed(0)
    for _ in range(50):
        sizes = torch.rand(7, generator=gen) * 3 + 0.1
        storage = torch.rand(2, 3, generator=gen) * 8
        score = torch.randint(0, 3, (2, 3, 7), generator=gen).float() / 10      # many ties
        state = DeploymentState(torch.zeros(2, 7), torch.zeros(2, 3, 7), torch.zeros(2, 3, 7, dtype=torch.bool),
                                storage, sizes)
        assert torch.equal(DeploymentDemos().add(state, score), greedy_fill(score, sizes, storage))


def _trainer(**kw) -> Trainer:
    # servers hold 2 of the fixture's 4 services (1.1, 1.1, 2, 2 MB): what to place is a real choice
    env_cfg = EnvConfig(num_servers=3, num_users=6, services_per_model=2, slots_per_episode=40, delta_t=2,
                        capacity=CapacityConfig(server_storage_bytes=(2.5e6, 3.5e6)))
    cfg = TrainConfig(num_envs=2, seed=3, hidden_user=16, hidden_deployment=32, hidden_allocation=16,
                      embedding_dim=4, rollout_slots=2, tensorboard=False, warm_start_slots=40, **kw)
    return Trainer(cfg, env_cfg, load_catalog(FIXTURES, env_cfg))


def _agreement(trainer: Trainer, demos: DeploymentDemos) -> float:
    """Share of (decision, server, service) entries where greedy in-turn decoding equals popularity."""
    state, deployment, _, _ = demos.batch()
    with torch.no_grad():
        greedy = trainer.agents.deployment.act(state, deterministic=True).deployment
    return float((greedy == deployment).float().mean())


def test_cloned_deployment_decodes_the_popularity_sets(monkeypatch):
    trainer = _trainer(warm_start_deployment=True, warm_start_epochs=150, warm_start_lr=3e-3)
    seen = []
    add = DeploymentDemos.add

    def keep(self, state, score):
        if not seen:
            seen.append(self)
        return add(self, state, score)

    monkeypatch.setattr(DeploymentDemos, "add", keep)
    before = {k: v.clone() for k, v in trainer.agents.deployment.state_dict().items()}
    out = warm_start(trainer)
    demos = seen[0]
    trained_agreement = _agreement(trainer, demos)
    trainer.agents.deployment.load_state_dict(before)
    untrained = _agreement(trainer, demos)
    assert out["warm_start_deployment_last_nll"] < 0.5 * out["warm_start_deployment_first_nll"]
    assert trained_agreement >= 0.95 and trained_agreement > untrained + 0.05
    assert "warm_start_first_nll" not in out                        # the users were not cloned
    assert all(g["lr"] == trainer.cfg.lr for g in trainer.optimisers["deployment"].param_groups)


def test_user_clone_lowers_the_heuristic_choices_nll():
    trainer = _trainer(warm_start=True, warm_start_epochs=40, warm_start_lr=3e-3)
    out = warm_start(trainer)
    assert out["warm_start_last_nll"] < out["warm_start_first_nll"] - 0.5
    assert "warm_start_deployment_first_nll" not in out


def test_no_clone_no_play():
    assert warm_start(_trainer()) == {}


def test_deployment_clone_needs_the_in_turn_policy():
    with pytest.raises(UserInputError, match="warm_start_deployment"):
        TrainConfig(warm_start_deployment=True, deployment_policy="gru").validate()


def test_default_preset_clones_the_deployment_and_the_paper_preset_does_not():
    from optimizer.algos.config import build_configs
    default, _ = build_configs(())
    assert (default.warm_start_deployment, default.deployment_reward, default.entropy_deployment,
            default.warm_start) == (True, "users", 0.0, False)
    paper, _ = build_configs((), "paper")
    assert not paper.warm_start_deployment and paper.deployment_reward == "eq24"
    off, _ = build_configs(("warm_start_deployment=false",))
    assert not off.warm_start_deployment
    users, _ = build_configs((), warm_start=True)           # --warm-start
    assert users.warm_start and users.warm_start_deployment


def test_a_checkpoint_from_an_older_network_shape_is_refused_in_one_line(tmp_path):
    from optimizer.algos import checkpoint
    from optimizer.algos.trained import load_policies
    trainer = _trainer()
    state = trainer.state_dict()
    actor = state["modules"]["user_actor"]
    actor["split_query.weight"] = actor.pop("server_head.0.weight")     # a renamed layer
    checkpoint.save(tmp_path, {"train_config": trainer.cfg.to_dict(), "env_config": {}, "profiles": FIXTURES,
                               "dims": vars(trainer.dims), "trainer": state, "history": []})
    with pytest.raises(UserInputError, match="'user_actor' network does not match"):
        load_policies(tmp_path)
    with pytest.raises(UserInputError, match="does not match"):
        _trainer().load_state_dict(state)
