"""Bad input to any command: one line on stderr starting ``error:``, exit code 2, no traceback, no file.

Covers what the per-area tests do not: click's own usage errors (reformatted by ``cli.py``), output
paths that cannot be written (checked before the work starts), and ``--device cuda`` without a GPU.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from common.errors import UserInputError
from cli import main
from inversion.run import parse_layers

FIXTURES = Path(__file__).parent / "fixtures" / "profiles"
EVALUATE = ["evaluate", "--profiles", str(FIXTURES), "--policy", "local-only", "--episodes", "1", "--slots", "1",
            "--num-envs", "1", "--set", "env.num_servers=2", "--set", "env.num_users=3"]


def _assert_one_line_error(result, *words: str) -> str:
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert result.exception is None or isinstance(result.exception, SystemExit)
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize("args, words", [
    (["zoo", "--bogus"], ["No such option '--bogus'", "zoo --help"]),
    (["zoo", "extra"], ["unexpected extra argument", "zoo --help"]),
    (["nosuchcommand"], ["No such command 'nosuchcommand'"]),
    (["leakage"], ["Missing option '--model'", "leakage --help"]),
    (["profile", "lenet7", "--device", "tpu"], ["'--device'", "'tpu'", "auto"]),
    (["profile", "lenet7", "--repeats", "0"], ["'--repeats'"]),
    (["evaluate", "--threads", "0"], ["'--threads'"]),
    (["evaluate", "--device", "gpu"], ["'--device'", "'gpu'"]),
])
def test_usage_errors_are_one_line(args, words):
    _assert_one_line_error(CliRunner().invoke(main, args), *words)


def test_bare_command_prints_help():
    result = CliRunner().invoke(main, [])
    assert result.exit_code == 2 and "Commands:" in result.output and "error:" not in result.output


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
@pytest.mark.parametrize("command", [["profile", "lenet7"], EVALUATE])
def test_device_cuda_without_gpu_is_refused(command):
    _assert_one_line_error(CliRunner().invoke(main, command + ["--device", "cuda"]), "--device cuda")


def test_evaluate_out_under_a_file_is_refused_before_the_run(tmp_path):
    (tmp_path / "plain").write_text("x")
    result = CliRunner().invoke(main, EVALUATE + ["--out", str(tmp_path / "plain" / "r.json")])
    _assert_one_line_error(result, "plain is a file, not a folder")
    assert "evaluating" not in result.stderr  # refused before any episode ran
    assert os.listdir(tmp_path) == ["plain"]


@pytest.mark.parametrize("target, words", [
    ("plain/t.json", ["plain is a file, not a folder"]),
    (".", ["is a folder; give a file name"]),
])
def test_profile_out_that_cannot_be_written_is_refused(tmp_path, target, words):
    (tmp_path / "plain").write_text("x")
    result = CliRunner().invoke(main, ["profile", "lenet7", "--no-latency", "--out", str(tmp_path / target)])
    _assert_one_line_error(result, *words)
    assert os.listdir(tmp_path) == ["plain"]


def test_leakage_out_that_is_a_file_is_refused_before_training(tmp_path):
    profile = tmp_path / "lenet7.json"
    made = CliRunner().invoke(main, ["profile", "lenet7", "--no-latency", "--out", str(profile)])
    assert made.exit_code == 0, made.output
    before = profile.read_bytes()
    (tmp_path / "plain").write_text("x")
    result = CliRunner().invoke(main, ["leakage", "--model", "lenet7", "--budget", "smoke", "--threads", "1",
                                       "--profile", str(profile), "--out", str(tmp_path / "plain")])
    _assert_one_line_error(result, "--out", "plain: ", "plain is a file, not a folder")
    assert profile.read_bytes() == before and sorted(os.listdir(tmp_path)) == ["lenet7.json", "plain"]


@pytest.mark.parametrize("text, why", [(",", "empty item"), (" , ", "empty item"), ("x", "such as 1,4,9"),
                                       ("1,y", "such as 1,4,9"), ("", "is empty"), ("  ", "is empty"),
                                       ("1,,4", "empty item"), ("4,", "empty item"), ("1,1", "1 given twice"),
                                       ("4,1,4,1", "1,4 given twice")])
def test_layers_with_an_empty_item_a_repeat_or_no_split_point_are_refused(text, why):
    with pytest.raises(UserInputError, match="--layers") as info:
        parse_layers(text)
    assert why in str(info.value)
    assert parse_layers("4, 1,9") == (1, 4, 9) and parse_layers(None) is None


def test_ctrl_c_during_train_exits_130_with_a_resumable_checkpoint(tmp_path, monkeypatch):
    """The first Ctrl-C finishes the iteration, saves, and exits 130 (so `train && evaluate` stops)."""
    import signal

    from optimizer import train_commands

    real_train_group = train_commands.train_group

    def press_ctrl_c_after_one_iteration(*args, **kwargs):
        kwargs["on_iteration"] = lambda seed, row: signal.raise_signal(signal.SIGINT)
        return real_train_group(*args, **kwargs)

    monkeypatch.setattr(train_commands, "train_group", press_ctrl_c_after_one_iteration)
    small = [part for k, v in (("hidden_user", 8), ("hidden_deployment", 8), ("hidden_allocation", 8),
                               ("embedding_dim", 4), ("ppo_epochs", 1), ("tensorboard", "false"),
                               ("env.num_servers", 2), ("env.num_users", 3), ("env.slots_per_episode", 4),
                               ("env.delta_t", 2), ("env.services_per_model", 1))
             for part in ("--set", f"{k}={v}")]
    run = tmp_path / "run"
    before = signal.getsignal(signal.SIGINT)      # SIG_IGN in a background job (nohup, `&`, some CI runners)
    result = CliRunner().invoke(main, ["train", "--profiles", str(FIXTURES), "--iterations", "3", "--quiet",
                                       "--out", str(run), *small])
    assert result.exit_code == 130, result.output
    assert "interrupted: checkpoint at iteration 1" in result.stderr and "--resume" in result.stderr
    assert (run / "checkpoint.pt").is_file()
    assert signal.getsignal(signal.SIGINT) is before               # the handler is given back
