"""The profile-table schema refuses malformed tables by file and field, and writes atomically."""

from __future__ import annotations

import copy
import json
import os

import pytest

from common import files
from common.errors import UserInputError
from profiler import table


def _tiny() -> dict:
    """A two-unit table worked out by hand: unit 1 = 100 MACs, 10 params; unit 2 = 50 MACs, 6 params."""
    units = [
        {"index": 1, "name": "a", "modules": ["a"], "macs": 100, "flops": 200, "params": 10, "param_bytes": 40,
         "output_shape": [4], "output_bytes": 16, "latency_ms": 0.1},
        {"index": 2, "name": "b", "modules": ["b"], "macs": 50, "flops": 100, "params": 6, "param_bytes": 24,
         "output_shape": [2], "output_bytes": 8, "latency_ms": None},
    ]
    splits = [
        {"split": 0, "device_param_bytes": 0, "device_macs": 0, "device_flops": 0, "server_macs": 150,
         "server_flops": 300, "uplink_bytes": 12, "device_latency_ms": 0.0, "server_latency_ms": None},
        {"split": 1, "device_param_bytes": 40, "device_macs": 100, "device_flops": 200, "server_macs": 50,
         "server_flops": 100, "uplink_bytes": 16, "device_latency_ms": 0.1, "server_latency_ms": None},
        {"split": 2, "device_param_bytes": 64, "device_macs": 150, "device_flops": 300, "server_macs": 0,
         "server_flops": 0, "uplink_bytes": 8, "device_latency_ms": None, "server_latency_ms": 0.0},
    ]
    return {"schema_version": 1, "model": "tiny", "input_shape": [3], "element_bytes": 4, "input_bytes": 12,
            "weights": "none", "totals": {"macs": 150, "flops": 300, "params": 16, "param_bytes": 64},
            "units": units, "splits": splits, "leakage_meta": None}


def test_a_well_formed_table_passes_and_round_trips(tmp_path) -> None:
    path = files.write_json(tmp_path / "tiny.json", _tiny())
    assert table.read(path) == _tiny()
    assert list(table.read_dir(tmp_path)) == ["tiny"]


@pytest.mark.parametrize("mutate, field", [
    (lambda t: t.pop("units"), "'units' is missing"),
    (lambda t: t.update(schema_version=2), "'schema_version' is 2"),
    (lambda t: t["units"][1].pop("param_bytes"), "'units[1].param_bytes' is missing"),
    (lambda t: t["splits"][1].update(uplink_bytes=-16), "'splits[1].uplink_bytes' must be >= 0"),
    (lambda t: t["units"][0].update(macs="100"), "'units[0].macs' must be a finite number"),
    (lambda t: t["splits"].pop(), "'splits' must list 3 split points"),
    (lambda t: t["units"][1].update(index=3), "'units[1].index' must be 2"),
    (lambda t: t.update(input_shape=[3, 0]), "'input_shape' must be a list of positive ints"),
])
def test_malformed_tables_are_refused_naming_the_field(tmp_path, mutate, field) -> None:
    bad = _tiny()
    mutate(bad)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(bad))
    with pytest.raises(UserInputError) as err:
        table.read(path)
    assert str(err.value).startswith(str(path)) and field in str(err.value)


def test_leakage_is_checked_when_present_and_required_on_demand(tmp_path) -> None:
    t = _tiny()
    with pytest.raises(UserInputError, match="'splits\\[0\\].leakage' is missing; run `python cli.py leakage"):
        table.validate(t, require_leakage=True)
    for z, ssim in enumerate([1.0, 0.4, 0.0]):
        t["splits"][z]["leakage"] = {"ssim": ssim, "ssim_ci95": [ssim, ssim], "psnr": None, "psnr_ci95": None,
                                     "measured": z == 1}
    table.validate(t, require_leakage=True)
    t["splits"][1]["leakage"]["ssim"] = 1.3
    with pytest.raises(UserInputError, match=r"'splits\[1\].leakage.ssim' must be an SSIM in \[0, 1\], got 1.3"):
        table.validate(t)


def test_unreadable_and_invalid_json_name_the_file(tmp_path) -> None:
    with pytest.raises(UserInputError, match="cannot read profile"):
        table.read(tmp_path / "absent.json")
    (tmp_path / "broken.json").write_text("{ not json")
    with pytest.raises(UserInputError, match="broken.json: not valid JSON"):
        table.read(tmp_path / "broken.json")
    with pytest.raises(UserInputError, match="no \\*.json profile tables"):
        table.read_dir(tmp_path / "empty" if (tmp_path / "empty").mkdir() is None else tmp_path)


def test_interrupted_write_leaves_the_previous_file_intact(tmp_path, monkeypatch) -> None:
    path = files.write_json(tmp_path / "tiny.json", _tiny())
    before = path.read_text()
    newer = copy.deepcopy(_tiny())
    newer["weights"] = "changed"

    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(table.json, "dump", crash)
    with pytest.raises(KeyboardInterrupt):
        files.write_json(path, newer)
    assert path.read_text() == before
    assert sorted(os.listdir(tmp_path)) == ["tiny.json"]  # no temporary file left behind


@pytest.mark.parametrize("mutate, field", [
    (lambda t: t["splits"][1].update(uplink_bytes=12), "'splits[1].uplink_bytes' is 12 but the tensor crossing split 1 has 16"),
    (lambda t: t["splits"][2].update(device_macs=149), "'splits[2].device_macs' and server_macs must sum units 1..2"),
])
def test_cumulative_split_fields_must_agree_with_the_units(mutate, field) -> None:
    bad = _tiny()
    mutate(bad)
    with pytest.raises(UserInputError) as err:
        table.validate(bad)
    assert field in str(err.value)


@pytest.mark.parametrize("where, value, field", [
    (("model",), 5, "'model'"),
    (("units", 0), 7, "'units[0]'"),
    (("splits", 1), [1, 2], "'splits[1]'"),
    (("splits", 1, "leakage"), "high", "'splits[1].leakage'"),
])
def test_wrong_json_types_are_refused_by_field(where, value, field) -> None:
    bad = _tiny()
    node = bad
    for key in where[:-1]:
        node = node[key]
    node[where[-1]] = value
    with pytest.raises(UserInputError, match=field.replace("[", "\\[").replace("]", "\\]")):
        table.validate(bad, source="t.json")


def test_a_binary_file_is_refused_not_crashed(tmp_path) -> None:
    (tmp_path / "blob.json").write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(UserInputError, match="blob.json: cannot read profile \\(not UTF-8 text\\)"):
        table.read(tmp_path / "blob.json")


def test_two_tables_for_one_model_are_refused(tmp_path) -> None:
    files.write_json(tmp_path / "a.json", _tiny())
    files.write_json(tmp_path / "b.json", _tiny())
    with pytest.raises(UserInputError, match="b.json: model 'tiny' has a second table"):
        table.read_dir(tmp_path)


def test_atomic_open_gives_umask_permissions_and_writes_bytes(tmp_path) -> None:
    old = os.umask(0o027)
    try:
        with files.atomic_open(tmp_path / "sub" / "blob.bin", "wb") as fh:
            fh.write(b"\x00\x01")
    finally:
        os.umask(old)
    target = tmp_path / "sub" / "blob.bin"
    assert target.read_bytes() == b"\x00\x01"
    assert target.stat().st_mode & 0o777 == 0o640  # 0o666 & ~0o027, not mkstemp's 0o600


def test_atomic_open_into_a_file_is_a_user_error_and_leaves_nothing(tmp_path) -> None:
    (tmp_path / "plain").write_text("x")
    with pytest.raises(UserInputError, match="plain/out.txt: cannot write here"):
        with files.atomic_open(tmp_path / "plain" / "out.txt") as fh:
            fh.write("never")
    (tmp_path / "folder").mkdir()
    with pytest.raises(UserInputError, match="folder: cannot write here"):
        with files.atomic_open(tmp_path / "folder") as fh:  # rename onto a folder fails
            fh.write("never")
    assert sorted(os.listdir(tmp_path)) == ["folder", "plain"] and not os.listdir(tmp_path / "folder")


def test_check_writable_names_the_blocking_path(tmp_path) -> None:
    (tmp_path / "plain").write_text("x")
    files.check_writable(tmp_path / "new" / "deeper" / "out.json")  # missing folders are fine
    with pytest.raises(UserInputError, match="plain is a file, not a folder"):
        files.check_writable(tmp_path / "plain" / "new" / "out.json")
    with pytest.raises(UserInputError, match="--out .*: is a folder"):
        files.check_writable(tmp_path)
    files.check_writable(tmp_path / "new" / "folder", folder=True)
    with pytest.raises(UserInputError, match="plain is a file, not a folder"):
        files.check_writable(tmp_path / "plain", folder=True)
    assert sorted(os.listdir(tmp_path)) == ["plain"]  # no side effects
