"""Where priced defenses live: the model's profile table, in one top-level block (schema versioned).

    "defenses": {
      "schema": 1,
      "sets": {KEY: {"meta": {...settings, floor, reference accuracy...},
                     "records": {"z2/quantize/4/seed0": {...one option, inversion.defense.measure...}}}},
      "history": [{"set": KEY, "option": "z2/quantize/4/seed0", "replaced": DATE, "record": {...}}]
    }

KEY is the hash of everything that fixes a number except the seed (model, the weights' content hash,
data, image size, budget, precision, device kind), so runs under other settings add a set beside the
others and never touch them. Within a set a finished option is never measured again; ``--redo`` measures
it again and moves the value it replaces to ``history``. Each write holds the table's lock, re-reads it
and changes only its own record (concurrent runs lose nothing); ``profile`` carries the block over when
it re-profiles the same units (:func:`profiler.build.keep_leakage`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from common import files
from common.errors import UserInputError
from inversion.store import now_iso
from profiler import table as profile_table

FIELD = "defenses"
SCHEMA = 1


def option_key(split: int, defense: str, strength: float, seed: int) -> str:
    return f"z{split}/{defense}/{strength:g}/seed{seed}"


def block(table: dict[str, Any]) -> dict[str, Any]:
    """The table's defenses block (an empty one of this schema when there is none)."""
    found = table.get(FIELD) or {"schema": SCHEMA, "sets": {}, "history": []}
    if found.get("schema") != SCHEMA:
        raise UserInputError(f"profile table: defenses block has schema {found.get('schema')!r}; this splitpriv "
                             f"reads schema {SCHEMA}")
    return found


def records(table: dict[str, Any], key: str) -> dict[str, dict[str, Any]]:
    """The finished options of set ``key`` (empty when the table has none)."""
    return dict(block(table)["sets"].get(key, {}).get("records", {}))


def write_record(path: Path, key: str, meta: dict[str, Any], record: dict[str, Any], redo: bool) -> str:
    """Place one option's record in set ``key`` under the table's lock; returns what happened.

    ``"added"``; ``"replaced"`` (``redo``: the old record went to history); ``"kept"`` (the option was
    already there and ``redo`` is off: the table is left as it is, the earlier value stands).
    """
    name = option_key(record["split"], record["defense"], record["strength"], record["seed"])
    with files.locked(path):
        table = profile_table.read(path)
        found = block(table)
        entry = found["sets"].setdefault(key, {"meta": meta, "records": {}})
        old = entry["records"].get(name)
        if old is not None and not redo:
            return "kept"
        if old is not None:
            found["history"].append({"set": key, "option": name, "replaced": now_iso(), "record": old})
        entry["meta"] = meta
        entry["records"][name] = record | {"date": now_iso()}
        table[FIELD] = found
        profile_table.validate(table, source=str(path))
        files.write_json(path, table)
    return "replaced" if old is not None else "added"
