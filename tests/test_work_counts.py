"""The in-house solver's load-independent work counts reach the results table (work_* columns)."""

from __future__ import annotations

from pathlib import Path

from qpbench.adapters.base import Tolerance
from qpbench.adapters.inhouse import InHouseAdapter
from qpbench.cli import main as cli_main
from qpbench.generators import generate
from qpbench.results import COLUMNS, load_table
from qpbench.runner.measure import summarize, work_counts

WORK_COLUMNS = ("work_iterations", "work_factorizations", "work_solves", "work_products")


def test_adapter_reports_the_solvers_work_counts() -> None:
    adapter = InHouseAdapter()
    batch = generate("optnet_random", 4, 10, 10, 0, seed=1)
    out = adapter.solve(adapter.setup(batch, Tolerance.parse("mid")))
    counts = work_counts(out.info)
    assert set(counts) == {"iterations", "factorizations", "solves", "products"}
    assert counts["iterations"] == int(out.iterations.max())  # one loop iteration per iteration of the slowest
    assert counts["factorizations"] >= counts["iterations"]  # at least one per iteration of the working set
    again = adapter.solve(adapter.setup(batch, Tolerance.parse("mid")))
    assert work_counts(again.info) == counts  # deterministic: the same problems, the same work


def test_summarize_maps_counts_to_known_columns_only() -> None:
    raw = {
        "status": [0],
        "primal": [0.0],
        "dual": [0.0],
        "gap": [0.0],
        "objective": [1.0],
        "iterations": [3],
        "setup_times": [0.1],
        "solve_times": [0.2, 0.3],
        "work": {"iterations": 3, "factorizations": 4, "not_a_column": 9},
    }
    fields = summarize(raw, 1e-6)
    assert fields["work_iterations"] == 3 and fields["work_factorizations"] == 4
    assert "work_not_a_column" not in fields and set(WORK_COLUMNS) <= set(COLUMNS)
    assert "work_iterations" not in summarize({**raw, "work": {}}, 1e-6)


def test_run_writes_work_columns_for_the_inhouse_solver(tmp_path: Path) -> None:
    suite = tmp_path / "tiny.toml"
    suite.write_text(
        'solvers = ["inhouse"]\nrepeats = 1\nwarmups = 0\nreference = false\nthreads = 1\n'
        '[[cases]]\nfamily = "optnet_random"\nn = 8\nm = 8\nk = 0\nbatch_sizes = [3]\n',
        encoding="utf-8",
    )
    out = tmp_path / "out"
    assert cli_main(["run", str(suite), "--out", str(out), "--no-report", "--quiet", "--in-process"]) == 0
    row = load_table(out).iloc[0]
    assert row["outcome"] == "ok"
    assert all(row[c] > 0 for c in WORK_COLUMNS), row[list(WORK_COLUMNS)]
    assert row["work_iterations"] == row["iterations_max"]
