"""`python cli.py zoo` and `python cli.py profile`: formats, files, errors, and the golden text table."""

from __future__ import annotations

import csv
import io
import json
import os
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli import main
from profiler import table as schema
from profiler import zoo as model_zoo

GOLDEN = Path(__file__).parent / "golden"


def _run(*args: str):
    return CliRunner().invoke(main, list(args))


def test_zoo_lists_names_shapes_and_units():
    result = _run("zoo")
    assert result.exit_code == 0, result.output
    rows = {line.split()[0]: line.split() for line in result.stdout.splitlines()[1:]}
    assert list(rows) == model_zoo.available()
    assert rows["vgg19"][1:3] == ["3×224×224", "19"] and rows["resnet18"][2] == "10"
    assert rows["lenet12"][1:3] == ["3×32×32", "12"]


def test_golden_text_table_lenet7(tmp_path, monkeypatch):
    """The text table is a tested promise (like torchinfo's tests/test_output/*.out).

    Figures checked by hand: features.0 = 32·32·32 outputs × 27 taps = 884,736 MACs; features.2 =
    32·32·32 × 288 = 9,437,184; classifier.1 = 4096 × 256 = 1,048,576; raw input 3·32·32·4 = 12,288 B.
    Run where no data/profiles/lenet7.json lends its leakage. Regenerate after an intended change with
    SPLITPRIV_UPDATE_GOLDEN=1.
    """
    monkeypatch.chdir(tmp_path)
    result = _run("profile", "lenet7", "--no-latency")
    assert result.exit_code == 0, result.output
    golden = GOLDEN / "profile_lenet7_no_latency.txt"
    if os.environ.get("SPLITPRIV_UPDATE_GOLDEN"):
        golden.write_text(result.stdout)
    assert result.stdout == golden.read_text()


def test_text_table_shows_the_leakage_measured_in_data_profiles(tmp_path, monkeypatch):
    bundled = schema.read(Path(__file__).resolve().parents[1] / "data" / "profiles" / "lenet7.json")
    (tmp_path / "data" / "profiles").mkdir(parents=True)
    (tmp_path / "data" / "profiles" / "lenet7.json").write_text(json.dumps(bundled))
    monkeypatch.chdir(tmp_path)
    lines = _run("profile", "lenet7", "--no-latency").stdout.splitlines()
    assert lines[1].startswith("leakage SSIM from data/profiles/lenet7.json: measured on 32 px images with weights "
                               "data/weights/lenet7-fashion-mnist.pt, quick budget")
    split_rows = lines[lines.index(next(line for line in lines if line.startswith("split  "))) + 1:][:8]
    # the value to 3 digits, then † where the decoder was still improving (gain over its last half > 0.02)
    assert [row.split()[-1] for row in split_rows] == [
        f"{s['leakage']['ssim']:.3f}" + ("†" if (s["leakage"].get("convergence") or {}).get("gain_last_half", 0) > 0.02
                                          else "") for s in bundled["splits"]]
    # a table measured for other units lends nothing
    bundled["units"][0]["modules"] = ["something.else"]
    (tmp_path / "data" / "profiles" / "lenet7.json").write_text(json.dumps(bundled))
    lines = _run("profile", "lenet7", "--no-latency").stdout.splitlines()
    split_rows = lines[lines.index(next(line for line in lines if line.startswith("split  "))) + 1:][:8]
    assert not lines[1] and [row.split()[-1] for row in split_rows] == ["-"] * 8


def test_out_says_where_it_wrote(tmp_path):
    result = _run("profile", "lenet7", "--no-latency", "--out", str(tmp_path / "t.csv"))
    assert result.exit_code == 0 and result.stderr == f"wrote {tmp_path / 't.csv'}\n" and result.stdout == ""


def test_json_and_csv_formats_agree():
    as_json = json.loads(_run("profile", "lenet9", "--no-latency", "--format", "json").stdout)
    schema.validate(as_json)
    rows = list(csv.DictReader(io.StringIO(_run("profile", "lenet9", "--no-latency", "--format", "csv").stdout)))
    assert len(rows) == len(as_json["units"]) + 1 == 10
    assert sum(int(r["unit_macs"]) for r in rows[1:]) == as_json["totals"]["macs"]
    assert [int(r["uplink_bytes"]) for r in rows] == [s["uplink_bytes"] for s in as_json["splits"]]


def test_out_file_format_from_suffix(tmp_path):
    result = _run("profile", "--model", "lenet7", "--no-latency", "--out", str(tmp_path / "t.json"))
    assert result.exit_code == 0, result.output
    table = schema.read(tmp_path / "t.json")
    assert table["generator"]["command"].startswith("python cli.py profile lenet7 --no-latency")
    _run("profile", "lenet7", "--no-latency", "--out", str(tmp_path / "t.csv"))
    assert (tmp_path / "t.csv").read_text().startswith("model,split,")


def test_all_writes_one_json_per_zoo_model(tmp_path, monkeypatch):
    monkeypatch.setattr(model_zoo, "available", lambda: ["lenet7", "lenet12"])  # keep the test short
    result = _run("profile", "--all", "--no-latency", "--out", str(tmp_path / "profiles"))
    assert result.exit_code == 0, result.output
    tables = schema.read_dir(tmp_path / "profiles")
    assert sorted(tables) == ["lenet12", "lenet7"] and len(tables["lenet12"]["units"]) == 12


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    (tmp_path / "cli_usernets.py").write_text(textwrap.dedent("""
        from torch import nn

        class DataDependent(nn.Module):
            def __init__(self):
                super().__init__()
                self.conv = nn.Conv2d(3, 4, 3)
            def forward(self, x):
                if x.sum() > 0:
                    return self.conv(x)
                return x

        def tiny():
            return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 2))

        def untraceable():
            return DataDependent()
        untraceable.input_shape = (3, 8, 8)
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "cli_usernets"
    sys.modules.pop("cli_usernets", None)


def test_user_model_by_factory(user_module, tmp_path):
    result = _run("profile", "--model", f"{user_module}:tiny", "--input-shape", "3,8,8", "--no-latency",
                  "--format", "json")
    assert result.exit_code == 0, result.output
    table = json.loads(result.stdout)
    assert table["model"] == "cli_usernets:tiny" and len(table["units"]) == 2
    assert table["totals"]["macs"] == 4 * 36 * 27 + 144 * 2  # conv 4×6×6 outputs × 27 taps, linear 144→2


@pytest.mark.parametrize("args,message", [
    (["profile", "resnet19"], "the zoo has: lenet7"),
    (["profile", "lenet7", "--input-shape", "3,x,32"], "--input-shape"),
    (["profile", "lenet7", "--input-shape", "3,64,64"], "does not run on input shape 3,64,64"),
    (["profile", "--model", "no_such_pkg.nets:f", "--input-shape", "3,8,8"], "cannot import"),
    (["profile", "--model", "cli_usernets:tiny"], "--input-shape"),
    (["profile", "--model", "cli_usernets:untraceable"], "not traceable"),
    (["profile", "lenet7", "--weights", "missing.pt"], "no such file"),
    (["profile"], "give one model"),
])
def test_bad_input_is_one_line_exit_2_and_no_file(user_module, tmp_path, args, message):
    out = tmp_path / "never.json"
    result = CliRunner().invoke(main, [*args, "--no-latency", "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert message in result.stderr and result.stderr.count("\n") == 1
    assert "Traceback" not in result.output and not out.exists()
    assert list(tmp_path.glob("never*")) == []


def test_a_profile_never_drops_leakage_measured_for_other_units(tmp_path):
    """Re-profiling over a table whose measured leakage belongs to other units (a unit's modules edited here)
    is refused in one line and leaves the file byte for byte; with --all no file of the folder is written."""
    bundled = (Path(__file__).resolve().parents[1] / "data" / "profiles" / "lenet7.json").read_text()
    other = json.loads(bundled)
    other["units"][0]["modules"] = ["something.else"]
    target = tmp_path / "lenet7.json"
    target.write_text(json.dumps(other))
    refused = _run("profile", "lenet7", "--no-latency", "--out", str(target))
    assert refused.exit_code == 2 and "holds leakage or defenses measured for other units" in refused.output
    assert len(refused.output.strip().splitlines()) == 1 and target.read_text() == json.dumps(other)
    target.write_text(bundled)
    kept = _run("profile", "lenet7", "--no-latency", "--out", str(target))           # same units: kept
    assert kept.exit_code == 0 and json.loads(target.read_text())["leakage_meta"] == json.loads(bundled)["leakage_meta"]

    folder = tmp_path / "all"
    folder.mkdir()
    (folder / "lenet7.json").write_text(json.dumps(other))
    refused = _run("profile", "--all", "--no-latency", "--out", str(folder))
    assert refused.exit_code == 2 and "holds leakage or defenses measured for other units" in refused.output
    assert sorted(p.name for p in folder.iterdir()) == ["lenet7.json"]
    assert json.loads((folder / "lenet7.json").read_text()) == other
