"""benchmarks/maros_meszaros.py: a solver setting given with --setting reaches the solver, the
level's own tolerances included (they are defaults, not fixed arguments)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "maros_meszaros.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("maros_meszaros_script", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_level_settings_are_defaults_that_a_setting_overrides() -> None:
    script = _load()
    assert script.level_settings("mid", {}) == {"eps_abs": 1e-6, "eps_rel": 0.0}
    assert script.level_settings("mid", {"eps_rel": 1e-9, "max_iter": 50}) == {
        "eps_abs": 1e-6, "eps_rel": 1e-9, "max_iter": 50}


def test_a_relative_tolerance_setting_runs(maros_meszaros_dir: Path, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QPBENCH_MAROS_MESZAROS_DIR", str(maros_meszaros_dir))
    out = tmp_path / "outcomes.json"
    code = _load().main(["--problems", "HS21", "--levels", "mid", "--setting", "eps_rel=1e-9", "--json", str(out)])
    assert code == 0
    (outcome,) = json.loads(out.read_text())["outcomes"]
    assert outcome["problem"] == "HS21" and outcome["status"] == "solved" and outcome["meets"]
