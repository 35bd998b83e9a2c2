"""The folder of a sweep: its spec, one outcome file per trial, and the tidy CSV rebuilt from them.

``SWEEP/sweep.json`` (the resolved spec, the profile tables, the git commit it started at),
``SWEEP/trials/SETTING/POLICY.json`` (a :class:`~optimizer.sweep.trial.TrialOutcome`, written atomically when
the trial ends), ``SWEEP/runs/…`` (the learners' run folders, kept for resume and re-evaluation) and
``SWEEP/results.csv``: one row per (trial, seed, metric) of every finished trial. A trial whose outcome says
``done`` is never run again; a failed or interrupted one is run again by the next ``sweep`` of that folder.
"""

from __future__ import annotations

import csv
import io
import json
import math
import subprocess
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from common.errors import UserInputError
from common.files import atomic_open
from optimizer.sweep.spec import SweepSpec, identity_of
from optimizer.sweep.trial import Trial, TrialOutcome, kind_of

SWEEP_FILE = "sweep.json"
CSV_NAME = "results.csv"


def git_commit(where: Path) -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=where, capture_output=True,
                             text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=where,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return (out.stdout.strip() + ("+changes" if dirty else "")) if out.returncode == 0 else "unknown"
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"


class SweepFolder:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def check(self, spec: SweepSpec, profiles: str) -> dict[str, Any] | None:
        """The folder's record if it holds this very sweep (same spec and tables), ``None`` if it holds none;
        a one-line error if it holds another."""
        path = self.root / SWEEP_FILE
        if not path.is_file():
            return None
        record = json.loads(path.read_text())
        if (identity_of(record.get("spec") or {}), record.get("profiles")) != (spec.identity(), profiles):
            raise UserInputError(f"--out {self.root}: holds another sweep ({record['spec']['name']}, other "
                                 "settings, budget or tables); pick another --out")
        return record

    def open(self, spec: SweepSpec, profiles: str) -> dict[str, Any]:
        """Start the folder, or check that it holds this very sweep (same spec and tables) and continue it."""
        record = self.check(spec, profiles)
        path = self.root / SWEEP_FILE
        if record is not None:
            if record["spec"] != spec.to_dict():          # the same sweep, reworded: keep today's words
                record["spec"] = spec.to_dict()
                with atomic_open(path) as fh:
                    json.dump(record, fh, indent=1)
            return record
        wanted = {"spec": spec.to_dict(), "profiles": profiles}
        record = {**wanted, "commit": git_commit(Path(__file__).resolve().parent),
                  "started": time.strftime("%Y-%m-%d %H:%M:%S")}
        self.root.mkdir(parents=True, exist_ok=True)
        with atomic_open(path) as fh:
            json.dump(record, fh, indent=1)
        return record

    def outcome_path(self, trial: Trial) -> Path:
        return self.root / "trials" / trial.setting.slug / f"{trial.policy}.json"

    def outcome(self, trial: Trial) -> TrialOutcome | None:
        path = self.outcome_path(trial)
        if not path.is_file():
            return None
        return TrialOutcome(**json.loads(path.read_text()))

    def finished(self, trial: Trial) -> bool:
        outcome = self.outcome(trial)
        return outcome is not None and outcome.status == "done"

    def record(self, trial: Trial, outcome: TrialOutcome) -> None:
        path = self.outcome_path(trial)
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_open(path) as fh:
            json.dump(_finite(asdict(outcome)), fh, indent=1, allow_nan=False)

    def write_csv(self, spec: SweepSpec, trials: list[Trial]) -> None:
        axes = [a.name for a in spec.axes]
        columns = ["sweep", "setting", *axes, "policy", "kind", "seed", "iterations", "metric", "value", "ci95",
                   "episodes", "commit"]
        buf = io.StringIO()
        writer = csv.DictWriter(buf, columns)
        writer.writeheader()
        for trial in trials:
            outcome = self.outcome(trial)
            if outcome is None or outcome.status != "done":
                continue
            fixed = {"sweep": spec.name, "setting": trial.setting.slug, "policy": trial.policy,
                     "kind": kind_of(trial),
                     "iterations": spec.iterations if trial.learns else 0,
                     "commit": outcome.extra.get("commit", "unknown"),
                     **{a: json.dumps(v) if isinstance(v, (list, tuple)) else v
                        for a, v in trial.setting.values.items()}}
            for row in outcome.rows:
                writer.writerow({**fixed, **row, "seed": "" if row["seed"] is None else row["seed"]})
        with atomic_open(self.root / CSV_NAME, newline="") as fh:
            fh.write(buf.getvalue())


def _finite(data: Any) -> Any:
    """NaN (a metric with no value, e.g. cost per served user when nobody was served) → null in JSON."""
    if isinstance(data, float) and not math.isfinite(data):
        return None
    if isinstance(data, dict):
        return {str(k): _finite(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_finite(v) for v in data]
    return data
