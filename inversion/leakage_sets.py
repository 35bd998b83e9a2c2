"""Leakage sets in a profile table: the active set the optimizer reads, and every other set ever measured.

A *set* is the leakage of a model's split points measured under one set of settings (one
``settings_key``, which includes the hashes of the victim as loaded: :mod:`inversion.identity`).
A profile table holds:

* the **active set**: ``splits[z]["leakage"]`` for every z and ``leakage_meta`` (its settings, floor,
  convergence, monotonicity check). This is what ``evaluate`` and ``train`` read.
* ``leakage_history``: a list of other sets, newest first, each ``{"status", "meta", "splits",
  "moved"}`` with ``splits = {"z": leakage}``. ``status`` is ``"partial"`` (a run under other settings
  that has not measured every split yet), ``"replaced"`` (a set that was active until another set
  took its place) or ``"redone"`` (values of a set that a ``--redo`` measured again: the old values,
  ``moved`` the date they were replaced; never resumed from nor activated).

Rules (no measured value is ever dropped):

1. A run whose settings equal the active set's writes its splits into the active set; other splits
   keep their values. A value it replaces by a different one goes to a ``redone`` history entry.
2. A run under other settings writes into its own ``partial`` history entry (merged with what that
   entry holds), leaving the active set untouched, until the set has measured every split 1..L−1;
   then it becomes active and the set it replaces moves to the history (``replaced``). ``--force``
   makes it active at once. A table with no measured active value switches at once (nothing to
   keep), except to a smoke-budget set: a smoke set becomes active only with ``--force``.
3. A rerun finds its finished splits in the table itself (active, partial or replaced set), so
   resuming needs no results folder; the history entry it started from is then folded into its set.
4. Writes merge: a run writes only the splits it measured (or read from its results file) into
   the set as the table holds it *now* (re-read under :func:`common.files.locked`), so two runs on
   one table (disjoint ``--layers``) both keep their splits.

Restore an older complete set with ``cli.py leakage-sets TABLE --activate KEY`` (:func:`activate`), or rerun
``leakage`` with its settings, which resumes from it.
"""

from __future__ import annotations

import copy
from typing import Any

HISTORY = "leakage_history"
PARTIAL, REPLACED, REDONE = "partial", "replaced", "redone"


def active_key(table: dict[str, Any]) -> str | None:
    meta = table.get("leakage_meta") or {}
    return meta.get("settings_key")


def measured_splits(table: dict[str, Any]) -> dict[int, dict[str, Any]]:
    """Active measured entries ``{z: leakage}`` (boundary conventions excluded)."""
    return {z: s["leakage"] for z, s in enumerate(table["splits"])
            if isinstance(s.get("leakage"), dict) and s["leakage"].get("measured")}


def history(table: dict[str, Any]) -> list[dict[str, Any]]:
    value = table.get(HISTORY)
    return value if isinstance(value, list) else []


def find_set(table: dict[str, Any], key: str) -> tuple[str, dict[int, dict[str, Any]], dict[str, Any]] | None:
    """Where a set with ``key`` lives in the table (``"active"``, ``"partial"`` or ``"replaced"``), its
    entries and its meta; the active set first, then the newest history entry (``redone`` entries hold
    superseded values and are never found)."""
    if active_key(table) == key:
        return "active", measured_splits(table), table.get("leakage_meta") or {}
    for entry in history(table):
        if entry.get("status") != REDONE and entry.get("meta", {}).get("settings_key") == key:
            return (str(entry.get("status")), {int(z): v for z, v in entry.get("splits", {}).items()},
                    entry.get("meta") or {})
    return None


def _without_key(entries: list[dict[str, Any]], key: str) -> list[dict[str, Any]]:
    """History without the sets of ``key``: a run under ``key`` started from them, so it holds their values
    (``redone`` entries stay: they hold values no set holds any more)."""
    return [e for e in entries if e.get("status") == REDONE or e.get("meta", {}).get("settings_key") != key]


def _active_as_history(table: dict[str, Any], now: str) -> dict[str, Any] | None:
    measured = measured_splits(table)
    if not measured:
        return None
    return {"status": REPLACED, "moved": now, "meta": table.get("leakage_meta"),
            "splits": {str(z): measured[z] for z in sorted(measured)}}


def merged_entries(table: dict[str, Any], key: str, entries: dict[int, dict[str, Any]]
                   ) -> dict[int, dict[str, Any]]:
    """The set ``key`` as the table holds it, with ``entries`` written over it."""
    found = find_set(table, key)
    return {**(found[1] if found else {}), **entries}


def is_complete(table: dict[str, Any], entries: dict[int, Any]) -> bool:
    """Whether ``entries`` covers every measurable split 1..L−1 of the table."""
    return all(z in entries for z in range(1, len(table["units"])))


def place_set(table: dict[str, Any], key: str, meta: dict[str, Any], entries: dict[int, dict[str, Any]],
              boundary: dict[int, dict[str, Any]], complete: bool, force: bool, now: str,
              may_activate: bool = True) -> tuple[dict[str, Any], str]:
    """A copy of ``table`` holding the set ``key`` merged with ``entries`` (``{z: leakage}``) under the
    rules above. ``complete``: the merged set has measured every split; ``may_activate`` is False for a
    smoke-budget set (it then becomes active only with ``force``).

    Returns the new table and where the set went: ``"active"`` or ``"partial"``.
    """
    table = copy.deepcopy(table)
    num_units = len(table["units"])
    found = find_set(table, key)
    current = found[1] if found else {}
    merged = {**current, **entries}
    past = history(table)
    replaced = {z: current[z] for z in sorted(entries) if z in current and current[z] != entries[z]}
    if replaced:
        past = [{"status": REDONE, "moved": now, "meta": found[2],
                 "splits": {str(z): v for z, v in replaced.items()}}, *past]
    same = active_key(table) == key
    if same or force or (may_activate and (complete or not measured_splits(table))):
        if not same:
            moved = _active_as_history(table, now)
            past = _without_key(past, key)
            if moved is not None:
                past = [moved, *past]
            for z in range(1, num_units):
                table["splits"][z]["leakage"] = None
        for z in (0, num_units):
            table["splits"][z]["leakage"] = boundary[z]
        for z, leak in merged.items():
            table["splits"][z]["leakage"] = leak
        table["leakage_meta"] = meta
        where = "active"
    else:
        partial = {"status": PARTIAL, "moved": now, "meta": meta,
                   "splits": {str(z): merged[z] for z in sorted(merged)}}
        past = [partial, *_without_key(past, key)]
        where = PARTIAL
    if past:
        table[HISTORY] = past
    else:
        table.pop(HISTORY, None)
    return table, where


def describe(table: dict[str, Any]) -> list[dict[str, Any]]:
    """Every set of the table, the active one first: where it is, its key, settings and how many of the
    splits 1..L−1 it has measured (``complete`` when all)."""
    num_inner = len(table["units"]) - 1
    sets = []
    if measured_splits(table):
        sets.append(("active", measured_splits(table), table.get("leakage_meta") or {}))
    for entry in history(table):
        sets.append((str(entry.get("status")), {int(z): v for z, v in entry.get("splits", {}).items()},
                     entry.get("meta") or {}))
    return [{"where": where, "key": meta.get("settings_key"), "meta": meta, "splits": entries,
             "measured": len(entries), "of": num_inner,
             "complete": where != REDONE and len(entries) >= num_inner}
            for where, entries, meta in sets]


def activate(table: dict[str, Any], key: str, now: str) -> dict[str, Any]:
    """A copy of ``table`` whose active set is the complete history set ``key``; the set active before
    moves to the history (``replaced``). Raises ``KeyError`` for an unknown key and ``ValueError`` for a
    set that has not measured every split (its numbers would mix with nothing)."""
    found = find_set(table, key)
    if found is None:
        raise KeyError(key)
    where, entries, meta = found
    if where == "active":
        return copy.deepcopy(table)
    num_units = len(table["units"])
    missing = [z for z in range(1, num_units) if z not in entries]
    if missing:
        raise ValueError(f"set {key} has not measured splits {missing}")
    boundary = {z: table["splits"][z]["leakage"] for z in (0, num_units)}
    new, _ = place_set(table, key, meta, entries, boundary, complete=True, force=False, now=now)
    return new
