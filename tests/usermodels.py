"""A user's model file, made importable and profiled, for the tests that drive ``leakage`` on it."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from cli import main


def profiled_user_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, module: str, source: str,
                        spec: str) -> tuple[Path, Path]:
    """Write ``module``.py (``source``) into ``tmp_path``, make it importable, work from there, and profile
    ``spec`` without latency into ``tmp_path/tiny.json``: (folder, table path)."""
    (tmp_path / f"{module}.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    profile = tmp_path / "tiny.json"
    made = CliRunner().invoke(main, ["profile", spec, "--format", "json", "--out", str(profile), "--no-latency"])
    assert made.exit_code == 0, made.output
    return tmp_path, profile
