"""`cli.py leakage-sets`: list a table's leakage sets and switch the active one without losing a value.

Works on copies of the bundled VGG-16 table, which holds three complete sets (docs/leakage.md).
"""

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli import main
from profiler import table as profile_table

BUNDLED = Path(__file__).resolve().parents[1] / "data" / "profiles" / "vgg16.json"


@pytest.fixture
def table_copy(tmp_path):
    path = tmp_path / "vgg16.json"
    shutil.copy(BUNDLED, path)
    return path


def _all_sets(table: dict) -> dict[str, object]:
    """Every set's values by key, read straight from the JSON (active first, then the history), and under
    ``"redone"`` the values ``--redo`` replaced (entries of the active set's key, one split each)."""
    active = {z: s["leakage"]["ssim"] for z, s in enumerate(table["splits"])
              if s["leakage"] and s["leakage"]["measured"]}
    sets: dict[str, object] = {table["leakage_meta"]["settings_key"]: active}
    redone = []
    for entry in table["leakage_history"]:
        values = {int(z): v["ssim"] for z, v in entry["splits"].items()}
        if entry["status"] == "redone":
            redone.append(sorted(values.items()))
        else:
            sets[entry["meta"]["settings_key"]] = values
    sets["redone"] = sorted(redone)
    return sets


def _first_replaced(table: dict) -> dict:
    return next(e for e in table["leakage_history"] if e["status"] == "replaced")


def run(*args):
    return CliRunner().invoke(main, ["leakage-sets", *map(str, args)])


def test_lists_every_set_active_first(table_copy):
    table = json.loads(table_copy.read_text())
    result = run(table_copy)
    assert result.exit_code == 0, result.output
    rows = result.output.splitlines()[1:]
    keys = [table["leakage_meta"]["settings_key"]] + [e["meta"]["settings_key"] for e in table["leakage_history"]]
    assert [r.split()[1] for r in rows] == keys
    statuses = [r.split()[0] for r in rows]
    assert statuses[0] == "active" and set(statuses[1:]) == {"replaced", "redone"}
    for row, entry in zip(rows[1:], table["leakage_history"]):
        assert row.split()[0] == entry["status"]
        # a redone entry holds the values one --redo replaced; a set covers splits 1..15 (VGG-16: 16 units)
        assert f"{len(entry['splits'])} of 15" in row
    assert "15 of 15" in rows[0] and all("15 of 15" in r for r in rows if r.startswith("replaced"))


def test_activate_switches_sets_and_loses_no_value(table_copy):
    before = json.loads(table_copy.read_text())
    sets_before = _all_sets(before)
    old_key = before["leakage_meta"]["settings_key"]
    new_key = _first_replaced(before)["meta"]["settings_key"]

    result = run(table_copy, "--activate", new_key[:6])
    assert result.exit_code == 0, result.output
    after = profile_table.read(table_copy)             # still a valid table
    assert after["leakage_meta"]["settings_key"] == new_key
    assert [s["leakage"]["ssim"] for s in after["splits"][1:-1]] == [
        sets_before[new_key][z] for z in range(1, len(after["splits"]) - 1)]
    assert after["splits"][0]["leakage"] == before["splits"][0]["leakage"]      # conventions kept
    assert after["splits"][-1]["leakage"] == before["splits"][-1]["leakage"]
    assert _all_sets(after) == sets_before              # every set, every value, still there
    assert {e["status"] for e in after["leakage_history"]} == {"replaced", "redone"}

    back = run(table_copy, "--activate", old_key)
    assert back.exit_code == 0, back.output
    restored = json.loads(table_copy.read_text())
    assert restored["splits"] == before["splits"] and restored["leakage_meta"] == before["leakage_meta"]
    assert _all_sets(restored) == sets_before


def test_activating_the_active_set_writes_nothing(table_copy):
    before = table_copy.read_bytes()
    key = json.loads(before)["leakage_meta"]["settings_key"]
    result = run(table_copy, "--activate", key)
    assert result.exit_code == 0 and "is active" in result.output
    assert table_copy.read_bytes() == before


def _refused(result, *words):
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), result.output
    for word in words:
        assert word in lines[0]


@pytest.mark.parametrize("change, key_of, words", [
    (None, lambda t: "zzzz", ["is not a set of this table"]),
    (None, lambda t: "", ["matches several sets"]),
    (lambda t: _first_replaced(t)["splits"].pop("7"), lambda t: _first_replaced(t)["meta"]["settings_key"],
     ["measured 14 of 15 splits"]),
    (lambda t: _first_replaced(t)["meta"].update(budget="smoke"),
     lambda t: _first_replaced(t)["meta"]["settings_key"], ["smoke-budget"]),
])
def test_refusals_leave_the_table_as_it_was(table_copy, change, key_of, words):
    table = json.loads(table_copy.read_text())
    if change is not None:
        change(table)
        table_copy.write_text(json.dumps(table))
    before = table_copy.read_bytes()
    _refused(run(table_copy, "--activate", key_of(table)), *words)
    assert table_copy.read_bytes() == before
