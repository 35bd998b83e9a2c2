"""Give the active leakage set of each table the settings key of the victim's identity (what was measured).

    .venv/bin/python benchmarks/rekey_leakage_sets.py [TABLE.json ...]     (default: data/profiles/*.json)

Until 2026-12-02 a set's ``settings_key`` hashed labels only (weights label, data, image size, budget,
seed, decoder); now it also hashes the victim as loaded (:mod:`inversion.identity`). A set keyed by the
old formula is never resumed from, so a rerun of its documented command would measure everything again.
This script re-keys the *active* set of each table, honestly, and writes nothing else:

1. The old key is recomputed from what the set records (``leakage_meta``: weights label, data, image
   size, n_train, n_test, budget, decoder, seed) and must equal its ``settings_key``: the meta describes
   the set (else the table is left alone).
2. The victim is loaded as that command loads it today (``--weights`` = the recorded label: seeded
   random init for ``none``, else the state_dict file) and hashed; precision and device kind are the
   recorded ones. A weights *file* must be unchanged since the set's date: committed in git no later than
   the set's date and unmodified in the working tree (else the table is left alone).
3. ``settings_key`` becomes the new key; the old one stays as ``legacy_settings_key``; ``victim`` and a
   ``rekeyed`` record (date, script, what was verified) join the meta. Every leakage value of the table
   (active set and history) is compared before and after: the script stops if one would change.

History sets keep their old keys (no rerun will resume from them; ``leakage-sets --activate`` still
switches to them). Resumable: a table whose active set already carries the new key is reported and
skipped. Run from the repository root (weights labels are paths relative to it).
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import files  # noqa: E402
from common.errors import UserInputError  # noqa: E402
from inversion import leakage_sets  # noqa: E402
from inversion.config import settings_digest  # noqa: E402
from inversion.identity import victim_identity  # noqa: E402
from inversion.store import KEY_FORMULA  # noqa: E402
from profiler import table as profile_table  # noqa: E402
from profiler.weights import NO_WEIGHTS  # noqa: E402
from profiler.zoo import load_model  # noqa: E402

SCRIPT = "benchmarks/rekey_leakage_sets.py"


def recorded_settings(model: str, meta: dict[str, Any]) -> dict[str, Any]:
    """``LeakageSettings.as_json()`` without ``victim``, rebuilt from a set's meta."""
    data = meta["data"]["name"] if isinstance(meta.get("data"), dict) else meta.get("data")
    return {"model": model, "weights": meta["weights"], "data": data, "image_size": meta["image_size"],
            "budget": meta["budget"], "seed": meta["seed"], "train": meta["decoder"],
            "n_train": meta["n_train"], "n_test": meta["n_test"]}


def leakage_values(table: dict[str, Any]) -> str:
    """Every leakage value the table holds (active splits and every history set), as canonical JSON."""
    return json.dumps({"splits": [s.get("leakage") for s in table["splits"]],
                       "history": [e.get("splits") for e in leakage_sets.history(table)]}, sort_keys=True)


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], capture_output=True, text=True, check=True).stdout.strip()


def check_weights_file(label: str, set_date: str) -> dict[str, Any]:
    """The weights file is the one the set was measured with: committed by ``set_date``, not modified since."""
    path = Path(label)
    try:
        committed = _git("log", "-1", "--format=%cI", "--", label)
        dirty = _git("status", "--porcelain", "--", label)
    except (OSError, subprocess.CalledProcessError) as exc:
        raise UserInputError(f"{label}: cannot ask git whether it changed since {set_date} ({exc})") from None
    if not committed or dirty:
        raise UserInputError(f"{label}: not committed, or modified in the working tree; cannot tell that it is "
                             f"the file measured on {set_date}")
    if dt.datetime.fromisoformat(committed) > dt.datetime.fromisoformat(set_date):
        raise UserInputError(f"{label}: last committed {committed}, after the set's date {set_date}")
    return {"weights_file": label, "weights_file_sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
            "weights_file_last_commit": committed, "unchanged_since_the_set_was_measured": True}


def rekey(path: Path, now: str) -> str:
    """Re-key the active set of one table; returns one line saying what was done."""
    with files.locked(path):
        table = profile_table.read(path)
        meta = table.get("leakage_meta")
        if not meta or not leakage_sets.measured_splits(table):
            return f"{path}: no active leakage set; nothing to do"
        model = table["model"]
        settings = recorded_settings(model, meta)
        old = meta.get("legacy_settings_key", meta["settings_key"])
        if settings_digest(settings) != old:
            raise UserInputError(f"{path}: the active set's meta does not give its key {old} by the old formula; "
                                 "not re-keyed")
        loaded = load_model(model, weights=meta["weights"])
        victim = victim_identity(loaded.model, torch.device(meta["device"]), meta["precision"] == "bf16")
        new = settings_digest(settings | {"victim": victim.as_json()})
        if meta["settings_key"] == new:
            return f"{path}: active set already keyed {new} (legacy {old}); nothing to do"
        if "legacy_settings_key" in meta:
            raise UserInputError(f"{path}: re-keyed before to {meta['settings_key']}, but the victim loaded "
                                 f"today gives {new}: the model or its weights changed; measure it again")
        verified = ["the old formula over the recorded settings gives the recorded key"]
        if meta["weights"] == NO_WEIGHTS:
            weights = {"weights": "seeded random init", "torch": torch.__version__.split("+")[0]}
            verified.append("weights none: the seeded init of the pinned torch/torchvision (pyproject.toml)")
        else:
            weights = check_weights_file(meta["weights"], meta["date"])
            verified.append("weights file committed before the set's date and unmodified since")
        before = leakage_values(table)
        new_meta = dict(meta, settings_key=new, legacy_settings_key=old, victim=victim.as_json(),
                        settings_key_formula=KEY_FORMULA,
                        rekeyed={"date": now, "by": SCRIPT, "verified": verified, **weights})
        table["leakage_meta"] = new_meta
        if leakage_values(table) != before:
            raise AssertionError(f"{path}: re-keying would change a leakage value")
        profile_table.validate(table, source=str(path))
        files.write_json(path, table)
    return f"{path}: {old} -> {new} (weights {victim.weights_sha256[:12]}, structure {victim.structure_sha256[:12]})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tables", nargs="*", type=Path)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    tables = args.tables or sorted(Path("data/profiles").glob("*.json"))
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat()
    failed = 0
    for path in tables:
        try:
            print(rekey(path, now))
        except UserInputError as exc:
            print(f"error: {exc}", file=sys.stderr)
            failed += 1
    return 2 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
