"""Training on the real EdgeEnv (tiny fixture catalog): PPO ratio 1 at the first epoch for all three
layers, resume == uninterrupted run, Ctrl-C leaves a usable checkpoint, learned policies plug into
the evaluation loop, and the CLI refuses bad input with one line."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from optimizer.algos.config import TrainConfig, preset
from optimizer.algos.hc_mappo_l import Trainer
from optimizer.algos.rollout import collect
from optimizer.algos.runner import load_catalog, train_run
from optimizer.config import EnvConfig
from optimizer.env import EdgeEnv
from optimizer.evaluate import run_episodes
from optimizer.algos.trained import load_policies

FIXTURES = str(Path(__file__).parent / "fixtures" / "profiles")


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Small tensors: two torch threads on a busy 2-core machine made these runs several times slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)

SMALL = dict(hidden_user=16, hidden_deployment=16, hidden_allocation=16, embedding_dim=4, ppo_epochs=2,
             num_minibatches=2, rollout_slots=2, tensorboard=False)   # 3 iterations per 6-slot episode


def _env_cfg(**kw) -> EnvConfig:
    base = dict(num_servers=2, num_users=4, services_per_model=2, slots_per_episode=6, delta_t=2)
    return EnvConfig(**{**base, **kw})


def _trainer(algo="hc-mappo-l", **kw) -> Trainer:
    env_cfg = _env_cfg(capacity=kw.pop("capacity")) if "capacity" in kw else _env_cfg()
    cfg = TrainConfig(**{"algo": algo, "num_envs": 2, "seed": 3, **SMALL, **kw})
    return Trainer(cfg, env_cfg, load_catalog(FIXTURES, env_cfg))


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
@pytest.mark.parametrize("preset_name", ["default", "paper"])
def test_first_epoch_ratio_is_one_for_all_three_layers(precision, preset_name):
    overrides = {**preset(preset_name), **SMALL, "num_envs": 2}   # the tiny env's shape, whatever the preset's
    trainer = _trainer(deployment_stop_action=True, precision=precision, **overrides)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
        _check_ratios(trainer)


def _check_ratios(trainer):
    rollout = collect(trainer.env, trainer.agents, trainer.norms, trainer.slots)
    a = trainer.agents
    layers = [(a.user_layer, rollout.user, 2), (a.allocation, rollout.alloc, 1),
              (a.deployment_layer, rollout.dep, 1)]
    for layer, traj, critics in layers:
        zeros = torch.zeros_like(traj.reward)
        targets = [torch.zeros_like(traj.reward)] * critics
        samples = layer.samples(traj, zeros, *targets)
        out = layer.forward(samples)
        assert (out.logp - samples["logp_old"]).abs().max() < 1e-5
    assert rollout.dep.active.any()            # the deployment layer really decided something
    # and the trainer's own first minibatch agrees
    stats = trainer.train_iteration()
    for layer in ("user", "alloc", "dep"):
        assert stats[f"{layer}_first_ratio_dev"] < 1e-5


def test_rollout_actions_are_valid_and_deployments_fit():
    trainer = _trainer()
    rollout = collect(trainer.env, trainer.agents, trainer.norms, trainer.slots)
    u = rollout.user
    assert u.server_mask.gather(-1, u.server.unsqueeze(-1)).all()
    assert u.split_mask.gather(-1, u.split.unsqueeze(-1)).all()
    assert torch.isfinite(rollout.alloc.logp).all() and torch.isfinite(rollout.dep.logp).all()
    used = (rollout.dep.deployment * trainer.env.catalog.model_bytes).sum(-1)
    assert (used <= rollout.dep.storage).all()


def _comparable(rows):
    timings = {"rollout_s", "update_s", "iteration_s", "env_slots_per_s", "wall_s"}
    return [{k: v for k, v in row.items() if k not in timings and not k.endswith("_update_s")} for row in rows]


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    """Four uninterrupted iterations: the reference for both resume tests."""
    return train_run(TrainConfig(iterations=4, num_envs=2, seed=1, **SMALL), _env_cfg(), FIXTURES,
                     tmp_path_factory.mktemp("full") / "run", progress=False)


def test_resume_reproduces_an_uninterrupted_run(tmp_path, full_run):
    env_cfg = _env_cfg()
    train_run(TrainConfig(iterations=2, num_envs=2, seed=1, **SMALL), env_cfg, FIXTURES,
              tmp_path / "half", progress=False)
    resumed = train_run(TrainConfig(iterations=4, **SMALL), env_cfg, FIXTURES, tmp_path / "half",
                        resume=True, progress=False)
    assert resumed.iterations == 4
    assert _comparable(resumed.history) == _comparable(full_run.history)
    a = torch.load(full_run.run_dir / "checkpoint.pt", weights_only=False)["trainer"]
    b = torch.load(tmp_path / "half" / "checkpoint.pt", weights_only=False)["trainer"]
    for module in a["modules"]:
        for key in a["modules"][module]:
            assert torch.equal(a["modules"][module][key], b["modules"][module][key]), (module, key)
    assert a["lagrange"] == b["lagrange"]
    lines = (tmp_path / "half" / "metrics.csv").read_text().strip().splitlines()
    assert len(lines) == 5                                             # header + 4 iterations
    assert (tmp_path / "half" / "curves.png").stat().st_size > 0


def test_ctrl_c_finishes_the_iteration_and_leaves_a_usable_checkpoint(tmp_path, full_run):
    env_cfg = _env_cfg()
    cfg = dict(num_envs=2, seed=1, checkpoint_every=100, **SMALL)

    def press_ctrl_c(row):
        if row["iteration"] == 1:
            signal.raise_signal(signal.SIGINT)

    before = signal.getsignal(signal.SIGINT)      # SIG_IGN in a background job (nohup, `&`, some CI runners)
    stopped = train_run(TrainConfig(iterations=4, **cfg), env_cfg, FIXTURES, tmp_path / "run",
                        progress=False, on_iteration=press_ctrl_c)
    assert stopped.interrupted and stopped.iterations == 1
    assert signal.getsignal(signal.SIGINT) is before               # the handler is given back
    resumed = train_run(TrainConfig(iterations=4, **cfg), env_cfg, FIXTURES, tmp_path / "run",
                        resume=True, progress=False)
    assert _comparable(resumed.history) == _comparable(full_run.history)


@pytest.mark.parametrize("algo", ["hc-mappo-l", "heuristic-mappo-l"])
def test_trained_policies_plug_into_evaluation(tmp_path, algo):
    env_cfg = _env_cfg()
    train_run(TrainConfig(algo=algo, iterations=1, num_envs=2, **SMALL), env_cfg, FIXTURES, tmp_path / algo,
              progress=False)
    dep, usr, alloc, cfg = load_policies(tmp_path / algo)
    assert cfg == env_cfg
    env = EdgeEnv(cfg, load_catalog(FIXTURES, cfg), num_envs=2, seed=0)
    result = run_episodes(env, dep, usr, alloc, episodes=2, seed=7)
    # two copy-episodes were evaluated, each with a real (positive, finite) mean delay
    assert len(result.samples["delay_s"]) == 2
    assert all(0.0 < d < float("inf") for d in result.samples["delay_s"])
    if algo == "heuristic-mappo-l":
        assert type(dep).__name__ == "LRUDeployment" and type(alloc).__name__ == "EqualShare"


def test_cli_refuses_bad_input_with_one_line(tmp_path):
    from cli import main

    runner = CliRunner()
    args = ["train", "--profiles", FIXTURES, "--iterations", "1", "--quiet", "--out", str(tmp_path / "r"),
            "--set", "env.num_users=3", "--set", "env.slots_per_episode=4", "--set", "hidden_user=8",
            "--set", "tensorboard=false"]
    bad = runner.invoke(main, args + ["--set", "learning_rate=0.1"])
    assert bad.exit_code == 2 and "learning_rate" in bad.output and "Traceback" not in bad.output
    ok = runner.invoke(main, args + ["--precision", "fp32"])
    assert ok.exit_code == 0, ok.output
    assert "run directory" in ok.output
    resolved = json.loads((tmp_path / "r" / "config.json").read_text())
    assert resolved["precision"] == "fp32" and resolved["train"]["precision"] == "fp32"
    if not torch.cuda.is_available():
        no_gpu = runner.invoke(main, args[:-2] + ["--out", str(tmp_path / "g"), "--device", "cuda"])
        assert no_gpu.exit_code == 2 and "--device cuda" in no_gpu.output
        assert len(no_gpu.output.strip().splitlines()) == 1 and not (tmp_path / "g").exists()
    again = runner.invoke(main, args)
    assert again.exit_code == 2 and "--resume" in again.output
    missing = runner.invoke(main, ["train", "--profiles", str(tmp_path / "nope"), "--quiet"])
    assert missing.exit_code == 2 and "nope" in missing.output


def test_non_finite_parameters_stop_training_with_a_clear_error():
    from optimizer.algos.hc_mappo_l import TrainingDiverged

    trainer = _trainer()
    trainer.train_iteration()
    with torch.no_grad():
        next(trainer.agents.user_critics.parameters()).view(-1)[0] = float("nan")
    with pytest.raises(TrainingDiverged, match="iteration 2: non-finite parameters in .*user_critics"):
        trainer.train_iteration()


def test_users_deployment_reward_is_the_users_mean_reward_of_its_period():
    """deployment_reward=users: each decision earns Σ over its ΔT slots of mean_k R^usr / 100 (here without
    the migration term): worked out from the users' own stored rewards, which price a miss at R^fail."""
    from optimizer.algos.rollout import RewardSettings
    trainer = _trainer(deployment_reward="users")
    rollout = collect(trainer.env, trainer.agents, trainer.norms, 4,
                      RewardSettings(team=True, users=True, migration_weight=0.0))
    per_slot = rollout.user.reward.mean(-1) / 100.0                                 # (T, B)
    by_hand = per_slot.view(2, 2, -1).sum(1)                                        # ΔT = 2: (D, B)
    J = trainer.env.dims[1]
    assert torch.allclose(rollout.dep.reward, by_hand.unsqueeze(-1).expand(-1, -1, J), atol=1e-6)
    assert (rollout.dep.reward < 0).all()
