"""A finished run's ``actors.pt``: small, evaluates exactly as the full checkpoint does, and can neither resume
nor be trained over."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from common.errors import UserInputError
from optimizer.algos import checkpoint
from optimizer.algos.config import TrainConfig
from optimizer.algos.runner import load_catalog, train_run
from optimizer.algos.trained import load_policies, load_trained
from optimizer.config import EnvConfig
from optimizer.env import EdgeEnv
from optimizer.evaluate import run_episodes

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py
FIXTURES = str(Path(__file__).parent / "fixtures" / "profiles")
SMALL = dict(hidden_user=16, hidden_deployment=16, hidden_allocation=16, embedding_dim=4, ppo_epochs=2,
             num_minibatches=2, rollout_slots=2, tensorboard=False, num_envs=2)
ENV = EnvConfig(num_servers=2, num_users=4, services_per_model=2, slots_per_episode=6, delta_t=2)


def _evaluate(run_dir: Path) -> dict[str, list[float]]:
    dep, usr, alloc, cfg = load_policies(run_dir)
    env = EdgeEnv(cfg, load_catalog(FIXTURES, cfg), num_envs=2, seed=0)
    return run_episodes(env, dep, usr, alloc, episodes=2, seed=7).samples


@pytest.mark.parametrize("algo", ["hc-mappo-l", "heuristic-mappo-l"])
def test_actors_file_evaluates_like_the_checkpoint(tmp_path, algo):
    run = tmp_path / "run"
    train_run(TrainConfig(algo=algo, iterations=2, seed=1, **SMALL), ENV, FIXTURES, run, progress=False)
    actors = torch.load(run / checkpoint.ACTORS_NAME, weights_only=False)
    assert actors["actors_only"] and set(actors["trainer"]["modules"]) <= set(checkpoint.ACTOR_MODULES)
    assert "user_actor" in actors["trainer"]["modules"] and "user_critics" not in actors["trainer"]["modules"]
    assert (algo == "heuristic-mappo-l") == ("deployment" not in actors["trainer"]["modules"])
    assert (run / checkpoint.ACTORS_NAME).stat().st_size < (run / checkpoint.CHECKPOINT_NAME).stat().st_size / 2

    only = tmp_path / "only-actors"
    only.mkdir()
    shutil.copy(run / checkpoint.ACTORS_NAME, only / checkpoint.ACTORS_NAME)
    trained = torch.load(run / checkpoint.CHECKPOINT_NAME, weights_only=False)["trainer"]["modules"]["user_actor"]
    loaded = load_trained(only).user.actor.state_dict()
    assert all(torch.equal(loaded[k], trained[k]) for k in trained)      # the trained weights, not a fresh init
    full, from_actors = _evaluate(run), _evaluate(only)
    assert full.keys() == from_actors.keys()
    for name in full:                                     # greedy play of the same weights: the same numbers
        np.testing.assert_array_equal(full[name], from_actors[name], err_msg=name)


def test_actors_file_neither_resumes_nor_is_trained_over(tmp_path):
    run = tmp_path / "run"
    cfg = TrainConfig(iterations=1, **SMALL)
    train_run(cfg, ENV, FIXTURES, run, progress=False)
    (run / checkpoint.CHECKPOINT_NAME).unlink()                 # a committed run: configs, CSV and actors only
    before = (run / checkpoint.ACTORS_NAME).read_bytes()
    with pytest.raises(UserInputError, match="cannot resume"):
        train_run(TrainConfig(**{**cfg.to_dict(), "iterations": 2}), ENV, FIXTURES, run, resume=True,
                  progress=False)
    with pytest.raises(UserInputError, match="holds a run already"):
        train_run(cfg, ENV, FIXTURES, run, progress=False)
    assert (run / checkpoint.ACTORS_NAME).read_bytes() == before


def test_actors_from_an_older_checkpoint_equal_those_written_at_the_end(tmp_path):
    run = tmp_path / "run"
    train_run(TrainConfig(iterations=1, **SMALL), ENV, FIXTURES, run, progress=False)
    written = torch.load(run / checkpoint.ACTORS_NAME, weights_only=False)
    (run / checkpoint.ACTORS_NAME).unlink()
    checkpoint.actors_from_checkpoint(run)
    exported = torch.load(run / checkpoint.ACTORS_NAME, weights_only=False)
    assert exported.keys() == written.keys()
    assert {k: exported[k] for k in checkpoint.CONFIG_KEYS} == {k: written[k] for k in checkpoint.CONFIG_KEYS}
    for name, state in written["trainer"]["modules"].items():
        assert all(torch.equal(state[k], exported["trainer"]["modules"][name][k]) for k in state)
