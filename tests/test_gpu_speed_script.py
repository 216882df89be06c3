"""Smoke test of the prepared GPU check's benchmark (benchmarks/gpu_speed.py) on the CPU: the
same code writes a report with every solver's row, the ratios and the accuracy of each."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from types import ModuleType


def test_cpu_smoke_run_writes_a_complete_report(tmp_path: Path, benchmark_script: Callable[[str], ModuleType]) -> None:
    module = benchmark_script("gpu_speed")
    code = module.main(["--device", "cpu", "--sizes", "6", "--batch-sizes", "2", "--dtypes", "float64",
                        "--repeats", "1", "--out", str(tmp_path), "--name", "smoke"])
    assert code == 0
    rows = json.loads((tmp_path / "smoke.json").read_text())
    assert {r["solver"] for r in rows} == {"inhouse-compact", "inhouse-eager", "qpth"}
    inhouse = [r for r in rows if r["solver"].startswith("inhouse")]
    assert all(r["solved"] == 2 and r["worst_residual"] <= 1e-6 and r["median"] > 0 for r in inhouse)
    text = (tmp_path / "smoke.md").read_text()
    assert "| 6 | float64 | 2 | inhouse-compact |" in text and "qpth / in-house" in text
