"""One set of metrics everywhere: optimizer/env/metrics.py, README "Metrics" and the training CSV."""

from __future__ import annotations

import re
from pathlib import Path

from optimizer.algos.logging import CSV_COLUMNS
from optimizer.env.metrics import METRIC_NAMES, METRICS

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_metric_table_is_the_code_s():
    section = README.read_text().split("\n## Metrics\n", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `(\w+)` \| (.*?) \| (.*?) \|$", section, re.M)
    assert [name for name, _, _ in rows] == list(METRIC_NAMES)
    for name, title, definition in rows:
        assert (title, definition) == (METRICS[name].title, METRICS[name].definition), name


def test_training_csv_has_every_metric():
    assert set(METRIC_NAMES) <= set(CSV_COLUMNS), set(METRIC_NAMES) - set(CSV_COLUMNS)
