"""Smoke test of the prepared GPU check's benchmark (benchmarks/gpu_speed.py) on the CPU: the
same code writes a report with every solver's row, the ratios and the accuracy of each."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_speed.py"


def test_cpu_smoke_run_writes_a_complete_report(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("gpu_speed", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_speed"] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    code = module.main(["--device", "cpu", "--sizes", "6", "--batch-sizes", "2", "--dtypes", "float64",
                        "--repeats", "1", "--out", str(tmp_path), "--name", "smoke"])
    assert code == 0
    rows = json.loads((tmp_path / "smoke.json").read_text())
    assert {r["solver"] for r in rows} == {"inhouse-compact", "inhouse-eager", "qpth"}
    inhouse = [r for r in rows if r["solver"].startswith("inhouse")]
    assert all(r["solved"] == 2 and r["worst_residual"] <= 1e-6 and r["median"] > 0 for r in inhouse)
    text = (tmp_path / "smoke.md").read_text()
    assert "| 6 | float64 | 2 | inhouse-compact |" in text and "qpth / in-house" in text
