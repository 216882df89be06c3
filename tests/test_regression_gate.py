"""The committed CI baseline and the ci suite it belongs to."""

from __future__ import annotations

import json
from pathlib import Path

from qpbench.results import load_table
from qpbench.runner import expand, load_suite

REPO = Path(__file__).resolve().parents[1]


def test_committed_baseline_matches_ci_suite():
    """Changing problems/ci.toml without regenerating the baseline would leave CI judging fewer
    cases (unpaired cases are only notes), so the two must cover the same rows."""
    base_dir = REPO / "reports" / "baseline" / "ci"
    table = load_table(base_dir)
    environment = json.loads((base_dir / "environment.json").read_text(encoding="utf-8"))
    assert environment  # compare reads it for its machine notes
    suite = load_suite("ci")
    expected = {(case.case_id, solver) for case in expand(suite) for solver in case.solvers}
    assert set(zip(table["case_id"], table["solver"], strict=True)) == expected
    assert set(table["outcome"]) == {"ok"}
    assert table["calibration_time"].notna().all() and (table["calibration_time"] > 0).all()
    assert set(table["torch_threads"]) == {suite.threads}
