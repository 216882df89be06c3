"""The results table: one tidy row per (case, solver, batch size, dtype, device, tolerance).

Stored as JSON Lines (``results.jsonl``), one row appended and flushed per finished measurement so
a crash or Ctrl-C loses no finished case; ``environment.json`` beside it records the machine.
Reports and regression checks read only these two files (they never import a solver).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

RESULTS_FILE = "results.jsonl"
ENVIRONMENT_FILE = "environment.json"

# Outcome of a row as a whole (per-problem statuses are counted in the n_* columns).
ROW_OK = "ok"  # the solver ran; see success_rate for how well
ROW_FAILED = "failed"  # the adapter raised
ROW_TIMEOUT = "timeout"  # the adapter ran past the time limit and was stopped
ROW_CRASHED = "crashed"  # the worker process died (segfault, abort, killed)
ROW_OOM = "oom"  # out of memory
ROW_UNSUPPORTED = "unsupported"  # the adapter's capabilities exclude this case
ROW_UNAVAILABLE = "unavailable"  # the solver's package or licence is missing

# Column name -> meaning. Times are seconds; residuals are absolute infinity norms.
COLUMNS: dict[str, str] = {
    "run_id": "id of the run; environment.json holds its machine record",
    "suite": "suite name",
    "case_id": "stable id of the case (problem family/test problem + sizes + seed + batch + dtype + device)",
    "family": "generator family or test-set name",
    "problem": "problem name within a test set (empty for generated batches)",
    "n": "variables",
    "m": "inequality rows",
    "k": "equality rows",
    "batch_size": "problems in the batch",
    "seed": "generator seed",
    "dtype": "float32 or float64",
    "device": "cpu or cuda",
    "tolerance": "low, mid or high (1e-3, 1e-6, 1e-9)",
    "tolerance_eps": "numeric tolerance of the level",
    "solver": "adapter name",
    "solver_version": "package version of the solver",
    "outcome": "ok / failed / timeout / crashed / oom / unsupported / unavailable",
    "error": "reason when outcome is not ok",
    "repeats": "timed repeats",
    "warmups": "untimed warm-up runs",
    "setup_time_median": "setup seconds, median over repeats",
    "setup_time_min": "",
    "setup_time_max": "",
    "solve_time_median": "solve seconds for the whole batch, median over repeats",
    "solve_time_min": "",
    "solve_time_max": "",
    "solve_times": "every repeat's solve time (list)",
    "time_per_problem": "solve_time_median / batch_size",
    "throughput": "problems per second (batch_size / solve_time_median)",
    "iterations_mean": "mean iterations per problem where reported",
    "iterations_max": "",
    "n_solved": "problems the solver reported solved",
    "n_primal_infeasible": "",
    "n_dual_infeasible": "",
    "n_max_iter": "",
    "n_numerical_error": "",
    "n_time_limit": "",
    "n_unknown": "",
    "n_success": "problems solved AND with all three residuals below tolerance_eps",
    "success_rate": "n_success / batch_size",
    "correct_rate": "share of problems where the solver's 'solved' flag agrees with the residual check",
    "expected_status": "the status the generator intends (solved / primal_infeasible / dual_infeasible)",
    "n_expected_status": "problems whose status matches expected_status",
    "primal_res_max": "max over problems of the primal residual",
    "dual_res_max": "max over problems of the dual residual",
    "gap_max": "max over problems of the duality gap",
    "primal_res_median": "",
    "dual_res_median": "",
    "gap_median": "",
    "obj_rel_err_max": "max relative objective error against the reference optimum",
    "reference": "what the objective was compared against (published value / solver name / none)",
    "work_iterations": "iterations of the solver's batch loop (a load-independent work count, where reported)",
    "work_factorizations": "KKT factorizations, summed over the problems of the working set",
    "work_solves": "solves with a factorization, summed over the working set",
    "work_products": "passes over the problem data (products with Q, G, A), summed over the working set",
    "backward_time_median": "seconds of one backward pass where measured",
    "grad_err_max": "max relative gradient error where measured",
    "peak_memory_bytes": "peak device (CUDA) or process (CPU RSS) memory",
    "calibration_time": "seconds of the run's calibration kernel for this case (imitated interior-point iterations)",
    "torch_threads": "torch.get_num_threads() during the case",
    "worker": "in-process, subprocess, or paired (timed in an interleaved session, see pairing)",
    "pairing": "id of the interleaved session that timed the row; entry i of its rows' solve_times is one pair",
    "solves_per_time": "solves averaged into each solve_times entry (short solves are timed in runs)",
    "timestamp": "UTC time the row was written",
}


def write_row(results_dir: Path, row: Mapping[str, Any]) -> None:
    """Append one row and flush it to disk before returning."""
    unknown = set(row) - set(COLUMNS)
    if unknown:
        raise ValueError(f"row has unknown columns: {sorted(unknown)}")
    results_dir.mkdir(parents=True, exist_ok=True)
    with open(results_dir / RESULTS_FILE, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(dict(row), default=_json_default) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "item"):
        return obj.item()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    return str(obj)


def read_rows(results_dir: Path) -> list[dict[str, Any]]:
    """Every complete row; a torn last line (crash mid-write) is ignored."""
    path = Path(results_dir) / RESULTS_FILE
    if not path.exists():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def load_table(results_dir: Path | str) -> pd.DataFrame:
    """The results table as a DataFrame with every column of :data:`COLUMNS` present."""
    results_dir = Path(results_dir)
    if not (results_dir / RESULTS_FILE).exists():
        raise FileNotFoundError(f"no {RESULTS_FILE} in {results_dir}")
    frame = pd.DataFrame(read_rows(results_dir))
    for col in COLUMNS:
        if col not in frame.columns:
            frame[col] = None
    return frame[list(COLUMNS)]


def write_environment(results_dir: Path, record: Mapping[str, Any]) -> None:
    results_dir.mkdir(parents=True, exist_ok=True)
    (results_dir / ENVIRONMENT_FILE).write_text(json.dumps(dict(record), indent=2, default=str) + "\n")


def load_environment(results_dir: Path | str) -> dict[str, Any]:
    path = Path(results_dir) / ENVIRONMENT_FILE
    if not path.exists():
        return {}
    return json.loads(path.read_text())


def finished_keys(results_dir: Path, key_columns: Iterable[str]) -> set[tuple[Any, ...]]:
    """Keys of rows already written (used to resume a run without repeating finished cases)."""
    cols = tuple(key_columns)
    return {tuple(row.get(c) for c in cols) for row in read_rows(results_dir)}
