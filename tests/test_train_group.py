"""Seeds side by side (``train --seeds``): each run of a group is the run its seed trains alone.

The four properties of a group, on the real EdgeEnv and the tiny fixture catalog: equivalence with separate
runs (every parameter, λ and metrics row, in float32), independence (a run's partners, and a ×1e6 blow-up of
one partner's gradients, never move it), divergence (a broken run stops alone, with one line) and resume
(Ctrl-C in the middle of a group's turn, then --resume, gives the uninterrupted group bit for bit).
"""

from __future__ import annotations

import json
import signal
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from common.errors import UserInputError
from optimizer.algos import runner
from optimizer.algos.config import TrainConfig
from optimizer.algos.group import parse_seeds
from optimizer.algos.hc_mappo_l import Trainer
from optimizer.algos.runner import train_group, train_run
from optimizer.config import EnvConfig

FIXTURES = str(Path(__file__).parent / "fixtures" / "profiles")
SMALL = dict(hidden_user=16, hidden_deployment=16, hidden_allocation=16, embedding_dim=4, ppo_epochs=2,
             num_minibatches=2, rollout_slots=2, tensorboard=False, num_envs=2, precision="fp32",
             checkpoint_every=1)
TIMINGS = {"rollout_s", "update_s", "iteration_s", "env_slots_per_s", "wall_s"}


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py


def _env_cfg() -> EnvConfig:
    return EnvConfig(num_servers=2, num_users=4, services_per_model=2, slots_per_episode=6, delta_t=2)


def _cfg(seed: int, iterations: int = 3, **kw) -> TrainConfig:
    return TrainConfig(**{**SMALL, "seed": seed, "iterations": iterations, **kw})


def _rows(result):
    return [{k: v for k, v in row.items() if k not in TIMINGS and not k.endswith("_update_s")}
            for row in result.history]


def _state(run_dir: Path) -> dict:
    return torch.load(run_dir / "checkpoint.pt", weights_only=False)["trainer"]


def _assert_same_run(a, b):
    """Every metrics row, every network tensor, every optimiser moment, λ and the normalisers: equal."""
    assert a.iterations == b.iterations and _rows(a) == _rows(b)
    sa, sb = _state(a.run_dir), _state(b.run_dir)
    for module, tensors in sa["modules"].items():
        for key, tensor in tensors.items():
            assert torch.equal(tensor, sb["modules"][module][key]), (module, key)
    for name, opt in sa["optimisers"].items():
        for index, moments in opt["state"].items():
            for key, value in moments.items():
                assert torch.equal(value, sb["optimisers"][name]["state"][index][key]), (name, key)
    assert sa["lagrange"] == sb["lagrange"]
    assert repr(sa["normalisers"]) == repr(sb["normalisers"])


def _group(tmp_path: Path, seeds, name: str, iterations: int = 3, **kw):
    return train_group([_cfg(s, iterations, **kw) for s in seeds], _env_cfg(), FIXTURES,
                       [tmp_path / name / f"seed-{s}" for s in seeds], progress=False)


@pytest.fixture(scope="module")
def alone(tmp_path_factory):
    """Seeds 0, 1 and 2 trained alone, each in a process state of its own making: the references."""
    folder = tmp_path_factory.mktemp("alone")
    return {s: train_run(_cfg(s), _env_cfg(), FIXTURES, folder / f"s{s}", progress=False) for s in (0, 1, 2)}


@pytest.mark.parametrize("algo", ["hc-mappo-l", "h-ippo"])
def test_a_group_trains_exactly_the_runs_its_seeds_train_alone(tmp_path, alone, algo):
    if algo != "hc-mappo-l":      # the other algorithms: the same property, one partner each
        solo = train_run(_cfg(2, algo=algo), _env_cfg(), FIXTURES, tmp_path / "solo", progress=False)
        group = _group(tmp_path, (5, 2), "g", algo=algo)
        _assert_same_run(group[1], solo)
        return
    group = _group(tmp_path, (0, 1, 2), "g")
    for result in group:
        _assert_same_run(result, alone[result.seed])
    assert _rows(group[0]) != _rows(group[1])           # and the seeds really are different runs


def test_a_run_does_not_depend_on_its_partners(tmp_path, alone):
    with_0 = _group(tmp_path, (0, 1), "a")[1]
    with_2 = _group(tmp_path, (1, 2), "b")[0]
    _assert_same_run(with_0, with_2)
    _assert_same_run(with_0, alone[1])


def test_a_partners_huge_gradients_do_not_move_a_run(tmp_path, alone, monkeypatch):
    """Gradient clipping, Adam moments and λ are per run: seed 0's gradients × 1e6 (clipped to a step that
    differs from its own) leave seed 1 as it was."""
    class Blown(Trainer):
        def __init__(self, cfg, *args):
            super().__init__(cfg, *args)
            if cfg.seed == 0:
                for module in self.agents.modules().values():
                    for p in module.parameters():
                        p.register_hook(lambda grad: grad * 1e6)

    monkeypatch.setattr(runner, "Trainer", Blown)
    group = _group(tmp_path, (0, 1), "g")
    _assert_same_run(group[1], alone[1])
    blown, plain = _state(group[0].run_dir)["modules"], _state(alone[0].run_dir)["modules"]
    assert any(not torch.equal(blown[m][k], plain[m][k]) for m in plain for k in plain[m])   # seed 0 did move


def test_a_diverging_run_stops_alone_and_its_folder_stays_valid(tmp_path, alone, monkeypatch):
    class Breaks(Trainer):
        def train_iteration(self):
            if self.cfg.seed == 0 and self.iteration == 1:
                with torch.no_grad():
                    next(self.agents.user_critics.parameters()).view(-1)[0] = float("nan")
            return super().train_iteration()

    monkeypatch.setattr(runner, "Trainer", Breaks)
    broken, healthy = _group(tmp_path, (0, 1), "g")
    assert broken.diverged.startswith("iteration 2: non-finite parameters in") and "user_critics" in broken.diverged
    assert broken.iterations == 1 and broken.saved_iteration == 1
    _assert_same_run(healthy, alone[1])
    monkeypatch.undo()
    resumed = train_run(_cfg(0), _env_cfg(), FIXTURES, broken.run_dir, resume=True, progress=False)
    _assert_same_run(resumed, alone[0])                  # its checkpoint was the good iteration 1


def test_a_group_interrupted_mid_turn_resumes_bit_for_bit(tmp_path, alone):
    """Ctrl-C after seed 0's second iteration: seed 0 is at 2, seeds 1 and 2 at 1 when the group stops."""
    seeds = (0, 1, 2)

    def press_ctrl_c(seed, row):
        if seed == 0 and row["iteration"] == 2:
            signal.raise_signal(signal.SIGINT)

    cfgs = [_cfg(s, checkpoint_every=100) for s in seeds]
    dirs = [tmp_path / f"seed-{s}" for s in seeds]
    stopped = train_group(cfgs, _env_cfg(), FIXTURES, dirs, progress=False, on_iteration=press_ctrl_c)
    assert all(r.interrupted for r in stopped)
    assert [r.saved_iteration for r in stopped] == [2, 1, 1]
    resumed = train_group(cfgs, _env_cfg(), FIXTURES, dirs, resume=True, progress=False)
    for result in resumed:
        _assert_same_run(result, alone[result.seed])


def test_seed_lists_parse_and_bad_ones_are_refused_in_one_line():
    assert parse_seeds("0-3", 10) == [0, 1, 2, 3]
    assert parse_seeds("0,3,5", 10) == [0, 3, 5]
    assert parse_seeds("7, 1-2", 10) == [7, 1, 2]
    for bad in ("", "a", "3-1", "0-11", "-1", "1,1", "0-99999"):
        with pytest.raises(UserInputError, match="--seeds"):
            parse_seeds(bad, 10)


def test_cli_trains_a_group_into_seed_folders_and_evaluates_it_over_seeds(tmp_path):
    from cli import main

    out = tmp_path / "g"
    runner_ = CliRunner()
    args = ["train", "--profiles", FIXTURES, "--iterations", "1", "--quiet", "--out", str(out), "--precision",
            "fp32"] + [f"--set={k}={v}" for k, v in (("env.num_users", 3), ("env.slots_per_episode", 4),
                                                     ("hidden_user", 8), ("tensorboard", "false"))]
    done = runner_.invoke(main, args + ["--seeds", "0,3"])
    assert done.exit_code == 0, done.output
    assert json.loads((out / "group.json").read_text())["seeds"] == [0, 3]
    for seed in (0, 3):
        for name in ("config.json", "metrics.csv", "checkpoint.pt", "curves.png"):
            assert (out / f"seed-{seed}" / name).is_file()
    assert done.output.count("seed ") == 2
    both = runner_.invoke(main, args + ["--seeds", "0", "--seed", "1"])
    assert both.exit_code == 2 and "--seeds" in both.output and "Traceback" not in both.output
    again = runner_.invoke(main, args + ["--seeds", "0,3"])
    assert again.exit_code == 2 and "--resume" in again.output
    longer = runner_.invoke(main, ["train", "--out", str(out), "--resume", "--iterations", "2", "--quiet"])
    assert longer.exit_code == 0, longer.output                 # the group's own seeds, from group.json
    assert all(len((out / f"seed-{s}" / "metrics.csv").read_text().splitlines()) == 3 for s in (0, 3))
    evaluated = runner_.invoke(main, ["evaluate", "--checkpoint", str(out), "--policy", "none", "--episodes", "2",
                                      "--num-envs", "2", "--out", str(tmp_path / "e.json")])
    assert evaluated.exit_code == 0, evaluated.output
    records = {r["policy"]: r for r in json.loads((tmp_path / "e.json").read_text())["results"]}
    per_seed = [records["seed-0"]["user_cost"], records["seed-3"]["user_cost"]]
    over = records["hc-mappo-l (2 seeds)"]
    assert over["user_cost"] == pytest.approx(sum(per_seed) / 2)
    spread = abs(per_seed[0] - per_seed[1]) / 2                 # s.d./√2 for two seeds; t(0.975, 1) = 12.706
    assert over["user_cost_ci95"] == pytest.approx(12.706 * spread, rel=1e-3)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU (benchmarks/device_check.sh runs it)")
def test_cuda_group_matches_the_run_alone(tmp_path):
    """On a GPU each run keeps its CUDA RNG stream too; atomics in scatter kernels may reorder sums, so the
    comparison allows 1e-5 relative instead of bit equality."""
    solo = train_run(_cfg(1, device="cuda"), _env_cfg(), FIXTURES, tmp_path / "solo", progress=False)
    group = _group(tmp_path, (0, 1), "g", device="cuda")
    assert group[1].iterations == solo.iterations
    for a, b in zip(_rows(group[1]), _rows(solo)):
        assert a.keys() == b.keys()
        for key in a:
            assert a[key] == pytest.approx(b[key], rel=1e-5, abs=1e-6, nan_ok=True), key
    sa, sb = _state(group[1].run_dir)["modules"], _state(solo.run_dir)["modules"]
    for module in sa:
        for key in sa[module]:
            torch.testing.assert_close(sa[module][key], sb[module][key], rtol=1e-5, atol=1e-6)
