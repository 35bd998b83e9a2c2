"""The paper's claims as checks: verdicts on results worked out by hand, malformed claims (and spec list
fields given one bare value) refused in one line, and a reworded claim leaving a finished sweep the same
sweep."""

from __future__ import annotations

import json

import numpy as np
import pytest

from common.errors import UserInputError
from optimizer.sweep.claims import judge, parse_claim
from optimizer.sweep.folder import SWEEP_FILE, SweepFolder
from optimizer.sweep.report import Cell
from optimizer.sweep.spec import parse_spec


def _cells(table: dict[str, dict[str, list[float]]], metric="charged_cost", ci=None):
    """setting → policy → per-seed values (one value: a heuristic, with ``ci`` as its episodes' half-width)."""
    out = {}
    for setting, policies in table.items():
        for policy, values in policies.items():
            cell = Cell("learner" if len(values) > 1 else "heuristic", {metric: np.array(values, float)})
            if ci is not None and len(values) == 1:
                cell.ci95[metric] = ci
            out.setdefault(setting, {})[policy] = cell
    return out


def _claim(**fields):
    return parse_claim({"text": "t", **fields}, "spec")


def test_relative_claims_hold_reverse_or_do_not_separate():
    # hc-mappo-l seeds 80 and 82 against 100 in one setting: (81 - 100) / 100 = -19 %; the bootstrap of two
    # seeds lands on -20 %, -19 % or -18 %
    cells = _cells({"s0": {"hc-mappo-l": [80, 82], "greedy": [100]}})
    (finding,) = judge(_claim(check="relative", against=["greedy"], paper=-0.12), cells, ["s0"], {"s0": 3.0})
    assert finding.measured.startswith("-19.0 % [-20.0, -18.0]")
    assert finding.verdict == "holds (the paper's -12.0 % is outside our interval)"
    (finding,) = judge(_claim(check="relative", against="all", paper=[-0.21, -0.08]), cells, ["s0"], {"s0": 3.0})
    assert finding.subject.startswith("hc-mappo-l vs greedy") and finding.verdict.startswith("holds (")
    assert "inside" in finding.verdict
    cells = _cells({"s0": {"hc-mappo-l": [120, 122], "greedy": [100]}})
    (finding,) = judge(_claim(check="relative", against=["greedy"], paper=-0.12), cells, ["s0"], {"s0": 3.0})
    assert finding.verdict.startswith("reversed")
    cells = _cells({"s0": {"hc-mappo-l": [90, 110], "greedy": [100]}})     # -10 % or +10 %: straddles 0
    (finding,) = judge(_claim(check="relative", against=["greedy"], paper=-0.12), cells, ["s0"], {"s0": 3.0})
    assert finding.verdict.startswith("not separated")


def test_bound_counts_the_settings_where_it_holds():
    cells = _cells({"a": {"hc-mappo-l": [2.0, 2.2]}, "b": {"hc-mappo-l": [2.5, 2.7]}}, metric="delay_s")
    limits = {"a": 2.0, "b": 3.0}
    (finding,) = judge(_claim(check="bound", policies=["hc-mappo-l"], metric="delay_s", below="tau_bar"),
                       cells, ["a", "b"], limits, {"a": "τ̄ 2", "b": "τ̄ 3"})
    # means 2.1 against 2.0 (+5 %, over) and 2.6 against 3.0 (-13 %, under)
    assert finding.measured == "τ̄ 2: 2.1 (+5 %); τ̄ 3: 2.6 (-13 %)"
    assert finding.verdict.startswith("holds in 1 of 2")
    (finding,) = judge(_claim(check="bound", policies=["hc-mappo-l"], metric="delay_s", above=2.05,
                              settings=[0]), cells, ["a", "b"], limits)
    assert finding.measured == "a: 2.1 (+2 %)" and finding.verdict.startswith("holds (")


def test_change_of_a_heuristic_is_judged_with_its_episodes_intervals():
    table = {"first": {"greedy": [100.0]}, "mid": {"greedy": [50.0]}, "last": {"greedy": [92.0]}}
    claim = _claim(check="change", policy="greedy", paper=-0.078)
    (finding,) = judge(claim, _cells(table, ci=1.0), ["first", "mid", "last"], {})
    # (92 - 100) / 100 = -8 %, ± (1 + 1) / 100: [-10 %, -6 %]
    assert finding.measured == "100 → 92: -8.0 % [-10.0, -6.0] (n = 1)"
    assert finding.verdict == "holds (the paper's -7.8 % is inside our interval)"
    (finding,) = judge(claim, _cells(table, ci=5.0), ["first", "mid", "last"], {})      # ± 10 %: straddles 0
    assert finding.verdict.startswith("not separated")
    success = _claim(check="change", policy="greedy", metric="success_rate", paper=[0.94, 0.99])
    table = {"first": {"greedy": [0.95]}, "last": {"greedy": [0.90]}}
    (finding,) = judge(success, _cells(table, metric="success_rate", ci=0.01), ["first", "last"], {})
    assert finding.verdict.startswith("reversed (the paper's +5.3 %")   # 94 → 99 is +5.3 %; ours -5.3 %


@pytest.mark.parametrize("fields, words", [
    ({"check": "relative", "paper": -0.1}, "needs 'against'"),
    ({"check": "relative", "against": ["greedy"]}, "'paper' must be"),
    ({"check": "bound", "policies": ["greedy"], "below": 3, "above": 4}, "one of below/above"),
    ({"check": "ranked"}, "check must be one of"),
    ({"checks": "bound"}, "unknown field 'checks'"),
])
def test_malformed_claims_are_refused_in_one_line(fields, words):
    with pytest.raises(UserInputError, match=words) as err:
        _claim(**fields)
    assert "\n" not in str(err.value)


def test_a_reworded_claim_is_the_same_sweep_and_other_budgets_are_not(tmp_path):
    base = {"name": "t", "heuristics": ["greedy"], "room": False, "iterations": 5, "claims": ["old words"]}
    folder = SweepFolder(tmp_path)
    folder.open(parse_spec(base), "tables")
    reworded = parse_spec({**base, "title": "new", "note": "n",
                           "claims": [{"text": "new", "check": "change", "policy": "greedy", "paper": -0.1}]})
    folder.open(reworded, "tables")                                   # the same sweep: accepted
    stored = json.loads((tmp_path / SWEEP_FILE).read_text())["spec"]
    assert stored["title"] == "new" and stored["claims"][0]["check"] == "change"   # today's words kept
    with pytest.raises(UserInputError, match="holds another sweep"):
        folder.check(parse_spec({**base, "iterations": 6}), "tables")


@pytest.mark.parametrize("field, value", [("algorithms", "hc-mappo-l"), ("seeds", 0), ("set", "env.num_users=20"),
                                          ("claims", "cheaper")])
def test_a_list_field_given_a_single_value_is_refused_in_one_line(field, value):
    data = {"name": "t", "heuristics": ["greedy"], field: value}
    with pytest.raises(UserInputError, match=f"'{field}' must be a list") as err:
        parse_spec(data)
    assert "\n" not in str(err.value)


def test_a_reference_worse_than_a_heuristic_is_said_to_bound_nothing():
    from optimizer.sweep.report import SweepResults, markdown

    spec = parse_spec({"name": "t", "heuristics": ["greedy"], "room": True})
    cells = _cells({"s": {"greedy": [100.0], "room": [126.4]}})
    cells["s"]["room"].kind = "reference"
    text = markdown(SweepResults(spec, ["s"], {"s": "default"}, {"s": 3.0}, cells))
    assert "Room: none measured: the hindsight reference lies 26.4 % *above* the best heuristic" in text
    cells["s"]["room"].values["charged_cost"] = np.array([90.0])
    text = markdown(SweepResults(spec, ["s"], {"s": "default"}, {"s": 3.0}, cells))
    assert "lies 10.0 % below the best heuristic; room to rank learners" in text


def test_claim_settings_outside_the_grid_are_refused():
    data = {"name": "t", "heuristics": ["greedy"], "axes": [{"name": "a", "keys": ["env.num_users"], "values": [4, 6]}],
            "claims": [{"text": "t", "check": "change", "policy": "greedy", "paper": -0.1, "settings": [0, 2]}]}
    with pytest.raises(UserInputError, match="grid indices 0..1"):
        parse_spec(data)


def test_a_setting_without_results_does_not_shift_the_grid_indices():
    cells = _cells({"s1": {"greedy": [2.6]}, "s2": {"greedy": [3.3]}}, metric="delay_s")    # s0 has no results
    claim = _claim(check="bound", policies=["greedy"], metric="delay_s", above=3.0, settings=[2])
    (finding,) = judge(claim, cells, ["s1", "s2"], {}, grid_index={"s1": 1, "s2": 2})
    assert finding.measured == "s2: 3.3 (+10 %)"
