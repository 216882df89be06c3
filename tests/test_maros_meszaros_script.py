"""benchmarks/maros_meszaros.py: a solver setting given with --setting reaches the solver, the
level's own tolerances included (they are defaults, not fixed arguments)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest


def test_level_settings_are_defaults_that_a_setting_overrides(benchmark_script: Callable[[str], ModuleType]) -> None:
    script = benchmark_script("maros_meszaros")
    assert script.level_settings("mid", {}) == {"eps_abs": 1e-6, "eps_rel": 0.0}
    assert script.level_settings("mid", {"eps_rel": 1e-9, "max_iter": 50}) == {
        "eps_abs": 1e-6, "eps_rel": 1e-9, "max_iter": 50}


def test_a_relative_tolerance_setting_runs(maros_meszaros_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           benchmark_script: Callable[[str], ModuleType]) -> None:
    monkeypatch.setenv("QPBENCH_MAROS_MESZAROS_DIR", str(maros_meszaros_dir))
    out = tmp_path / "outcomes.json"
    argv = ["--problems", "HS21", "--levels", "mid", "--setting", "eps_rel=1e-9", "--json", str(out)]
    code = benchmark_script("maros_meszaros").main(argv)
    assert code == 0
    (outcome,) = json.loads(out.read_text())["outcomes"]
    assert outcome["problem"] == "HS21" and outcome["status"] == "solved" and outcome["meets"]
