"""Monotonicity check (a deeper split cannot leak more) and leakage sets in a table, on hand-made numbers."""

import copy

from inversion import leakage_sets
from inversion.consistency import describe, monotonicity_violations


def _entry(values):
    return {"ssim": sum(values) / len(values), "ssim_per_image": values}


def test_a_deeper_split_above_a_shallower_one_beyond_the_paired_ci_is_flagged():
    shallow = [0.50, 0.60, 0.70, 0.55, 0.65, 0.58]
    deep_up = [v + 0.02 + 0.001 * i for i, v in enumerate(shallow)]        # always higher: paired CI > 0
    deep_noise = [v + (0.05 if i % 2 else -0.05) for i, v in enumerate(shallow)]   # mean +0, CI spans 0
    found = monotonicity_violations({1: _entry(shallow), 2: _entry(deep_noise), 3: _entry(deep_up)})
    assert [(v["shallow"], v["deep"]) for v in found] == [(1, 3)]
    v = found[0]
    assert abs(v["excess_ssim"] - (0.02 + 0.0025)) < 1e-4 and v["excess_ci95"][0] > 0 and v["n"] == 6
    assert "under-trained" in describe(v)
    assert monotonicity_violations({1: _entry(shallow), 2: _entry([x - 0.1 for x in shallow])}) == []


def _table(n_units=3):
    return {"units": [{}] * n_units, "splits": [{"split": z, "leakage": None} for z in range(n_units + 1)],
            "leakage_meta": None}


def _leak(ssim):
    return {"ssim": ssim, "measured": True}


def test_sets_switch_only_when_complete_and_the_replaced_one_is_kept():
    boundary = {0: {"ssim": 1.0, "measured": False}, 3: {"ssim": 0.0, "measured": False}}
    t, where = leakage_sets.place_set(_table(), "A", {"settings_key": "A"}, {1: _leak(0.8)}, boundary,
                                      complete=False, force=False, now="t0")
    assert where == "active"                         # nothing measured before: nothing to keep
    t, where = leakage_sets.place_set(t, "A", {"settings_key": "A"}, {1: _leak(0.8), 2: _leak(0.6)}, boundary,
                                      complete=True, force=False, now="t1")
    before = copy.deepcopy(t)
    t, where = leakage_sets.place_set(t, "B", {"settings_key": "B"}, {2: _leak(0.7)}, boundary,
                                      complete=False, force=False, now="t2")
    assert where == "partial" and t["splits"] == before["splits"] and t["leakage_meta"]["settings_key"] == "A"
    assert leakage_sets.find_set(t, "B") == ("partial", {2: _leak(0.7)}, {"settings_key": "B"})
    t, where = leakage_sets.place_set(t, "B", {"settings_key": "B"}, {1: _leak(0.9), 2: _leak(0.7)}, boundary,
                                      complete=True, force=False, now="t3")
    assert where == "active" and [s["leakage"]["ssim"] for s in t["splits"]] == [1.0, 0.9, 0.7, 0.0]
    (old,) = t["leakage_history"]
    assert old["status"] == "replaced" and old["splits"] == {"1": _leak(0.8), "2": _leak(0.6)}
    t, where = leakage_sets.place_set(t, "A", {"settings_key": "A"}, {1: _leak(0.8), 2: _leak(0.6)}, boundary,
                                      complete=True, force=False, now="t4")   # back to A: B is kept, A not twice
    assert where == "active" and [h["meta"]["settings_key"] for h in t["leakage_history"]] == ["B"]
