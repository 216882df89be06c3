"""The results table: one tidy row per (case, solver, batch size, dtype, device, tolerance).

Stored as JSON Lines (``results.jsonl``), one row appended and flushed per finished measurement so
a crash or Ctrl-C loses no finished case. A crash in the middle of a write leaves a torn last
line: readers skip it with a warning, and :func:`repair_results` (run before a resume appends)
removes it, so the next row never merges into it. ``environment.json`` beside the table keeps
one machine record per run id (:func:`save_run_record`), never rewriting an earlier run's.
Reports and regression checks read only these two files (they never import a solver).
"""

from __future__ import annotations

import json
import os
import secrets
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
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
    "time_limit": "seconds allowed per setup or solve step (a failure counts as this in penalized times)",
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
    "n_solved_inaccurate": "problems the solver reported solved only inaccurately",
    "n_success": "problems solved AND with all three residuals below tolerance_eps",
    "success_rate": "n_success / batch_size",
    "correct_rate": "share of problems where the solver's 'solved' flag agrees with the residual check",
    "expected_status": "the status the generator intends (solved / primal_infeasible / dual_infeasible)",
    "n_expected_status": "problems whose status matches expected_status",
    "n_failed_status": "problems not reported solved (for expected_status other than solved: without that status)",
    "n_failed_primal": "problems reported solved whose primal residual is above tolerance_eps",
    "n_failed_dual": "problems reported solved whose dual residual is above tolerance_eps",
    "n_failed_gap": "problems reported solved whose duality gap is above tolerance_eps",
    "multipliers": "solver (its own multipliers) or recovered (fitted at its z: docs/solvers.md)",
    "problem_errors": "the solver's per-problem messages, distinct, with counts",
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
    "machine": "the hardware that measured the row: CPU model, cores, cores usable, GPUs",
    "qpbench_version": "qpbench's package version",
    "qpbench_commit": "git commit of the qpbench checkout, +hash of its uncommitted changes (empty outside one)",
    "pairing": "id of the interleaved session that timed the row; entry i of its rows' solve_times is one pair",
    "solves_per_time": "solves averaged into each solve_times entry (short solves are timed in runs)",
    "timestamp": "UTC time the row was written",
}


class ResultsFileWarning(UserWarning):
    """A results file holds a torn row (a crash mid-write); the message says where and what is used."""


def write_row(results_dir: Path, row: Mapping[str, Any]) -> None:
    """Append one row and flush it to disk before returning."""
    unknown = set(row) - set(COLUMNS)
    if unknown:
        raise ValueError(f"row has unknown columns: {sorted(unknown)}")
    results_dir.mkdir(parents=True, exist_ok=True)
    _append_line(results_dir / RESULTS_FILE, json.dumps(dict(row), default=json_default) + "\n")


def _append_line(path: Path, line: str) -> None:
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(line)
        fh.flush()
        os.fsync(fh.fileno())


def json_default(obj: Any) -> Any:
    """``json.dumps``'s ``default`` for results rows: numpy scalars and arrays as Python numbers and
    lists, anything else as its string (rows and messages that carry them cross processes as JSON)."""
    if hasattr(obj, "item"):
        return obj.item()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    return str(obj)


# ----------------------------------------------------------------------------- reading and repair
@dataclass
class ParsedResults:
    rows: list[dict[str, Any]] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)  # each row's line as written (a repair keeps it byte for byte)
    damage: list[str] = field(default_factory=list)  # torn rows found, one sentence each

    def keep(self, row: dict[str, Any], text: str) -> None:
        self.rows.append(row)
        self.texts.append(text)


def parse_results(text: str, path: Path) -> ParsedResults:
    """Rows of a results file, with what is wrong in it.

    A line is a row when it is a JSON object. A last line that is not (no newline after it) is a
    torn write and is dropped: its row was never finished. A line that holds a torn row followed
    by a complete one (an older qpbench appended after a torn line) keeps the complete row. Any
    other bad line is damage this module will not guess about: ValueError naming the line.
    """
    parsed = ParsedResults()
    lines = text.split("\n")
    tail = lines.pop()  # "" when the file ends with a newline
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        row = _as_row(line)
        if row is None:
            row, dropped = _complete_suffix(line)
            if row is None:
                raise ValueError(
                    f"{path}: line {number} is not a results row ({line[:80]!r}...); the file is damaged: "
                    "fix or remove that line"
                )
            parsed.damage.append(
                f"line {number} holds a torn row ({dropped} characters) followed by a complete row; "
                "only the complete row is used"
            )
            line = line[dropped:]
        parsed.keep(row, line)
    if tail.strip():
        row = _as_row(tail)
        if row is None:
            parsed.damage.append(
                f"the last line is a torn row ({len(tail)} characters; a run stopped mid-write): it is left out, "
                "and a resume measures that row again"
            )
        else:
            parsed.keep(row, tail)
            parsed.damage.append("the last row has no newline after it")
    return parsed


def _as_row(line: str) -> dict[str, Any] | None:
    try:
        value = json.loads(line)
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def _complete_suffix(line: str) -> tuple[dict[str, Any] | None, int]:
    """The complete row at the end of a line that starts with a torn one, and the characters before it.

    Inside a JSON string a quote is escaped, so '{"' in a line always opens an object; the first
    such position from which the rest of the line parses is where the complete row starts."""
    start = line.find('{"', 1)
    while start != -1:
        row = _as_row(line[start:])
        if row is not None:
            return row, start
        start = line.find('{"', start + 1)
    return None, 0


def _read_results(results_dir: Path) -> ParsedResults:
    path = Path(results_dir) / RESULTS_FILE
    if not path.exists():
        return ParsedResults()
    return parse_results(path.read_text(encoding="utf-8", errors="replace"), path)


def read_rows(results_dir: Path) -> list[dict[str, Any]]:
    """Every complete row, in file order; a torn last line is skipped with a ResultsFileWarning."""
    parsed = _read_results(results_dir)
    for damage in parsed.damage:
        warnings.warn(f"{Path(results_dir) / RESULTS_FILE}: {damage}", ResultsFileWarning, stacklevel=2)
    return parsed.rows


def repair_results(results_dir: Path) -> list[str]:
    """Rewrite ``results.jsonl`` without torn rows (atomically), so that appending is safe; returns
    what was repaired (empty: nothing to do). Every complete row is kept, in order."""
    parsed = _read_results(results_dir)
    if parsed.damage:
        _write_atomically(Path(results_dir) / RESULTS_FILE, "".join(text + "\n" for text in parsed.texts))
    return parsed.damage


def _write_atomically(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` so that a crash leaves either the old file or the new one."""
    # Not tempfile.mkstemp: its file is private (0600), and os.replace keeps that mode, so the
    # results folder's readers (a teammate, CI) could not open it. open(..., "x") honours the umask.
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    handle = open(temporary, "x", encoding="utf-8")  # noqa: SIM115 - closed below; removed only once ours
    try:
        with handle as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


NOT_RECORDED = "(machine not recorded)"


def machine_of(frame: pd.DataFrame) -> pd.Series:
    """Each row's machine fingerprint (``machine``), with rows that recorded none (an older qpbench)
    as :data:`NOT_RECORDED`."""
    if "machine" not in frame.columns:
        return pd.Series(NOT_RECORDED, index=frame.index, dtype=object)
    return frame["machine"].map(lambda v: v if isinstance(v, str) and v else NOT_RECORDED)


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


# ----------------------------------------------------------------------------- run records
RUNS_KEY = "runs"


def load_run_records(results_dir: Path | str) -> dict[str, dict[str, Any]]:
    """Every run's record, by run id, oldest first.

    Also reads the older single-record file (one run at the top level, earlier runs summarized
    under 'previous_runs')."""
    path = Path(results_dir) / ENVIRONMENT_FILE
    if not path.exists():
        return {}
    # A hand-edited or damaged file: name it, rather than fail deep inside a reader (AttributeError).
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path} is not valid JSON ({exc}): fix or remove it") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path} is a JSON {type(data).__name__}, not a record of runs: fix or remove it")
    if isinstance(data.get(RUNS_KEY), dict):
        return dict(data[RUNS_KEY])
    records = {str(r.get("run_id", "")): dict(r) for r in data.get("previous_runs", []) if isinstance(r, dict)}
    current = {k: v for k, v in data.items() if k != "previous_runs"}
    records[str(current.get("run_id", ""))] = current
    return records


def save_run_record(results_dir: Path, record: Mapping[str, Any]) -> None:
    """Add or update the record of ``record['run_id']``; every other run's record stays as it was."""
    results_dir.mkdir(parents=True, exist_ok=True)
    records = load_run_records(results_dir)
    records[str(record.get("run_id", ""))] = dict(record)
    text = json.dumps({RUNS_KEY: records}, indent=2, default=str) + "\n"
    _write_atomically(results_dir / ENVIRONMENT_FILE, text)


def write_environment(results_dir: Path, record: Mapping[str, Any]) -> None:
    """Save one run's record (see :func:`save_run_record`)."""
    save_run_record(results_dir, record)


def load_environment(results_dir: Path | str, run_id: str | None = None) -> dict[str, Any]:
    """One run's record: ``run_id``'s, else that of the run that wrote the table's last row (else
    the newest run). With several runs it also holds 'runs': one line per run (rows, date,
    threads, commit), so a reader of one record sees that the table has others."""
    records = load_run_records(results_dir)
    if not records:
        return {}
    rows = _read_results(Path(results_dir)).rows  # load_table warns about damage; once is enough
    if run_id is None:
        with_rows = [row.get("run_id") for row in rows if row.get("run_id") in records]
        run_id = with_rows[-1] if with_rows else list(records)[-1]
    if run_id not in records:
        raise ValueError(f"no record of run {run_id!r} in {Path(results_dir) / ENVIRONMENT_FILE}")
    record = dict(records[run_id])
    if len(records) > 1:
        record[RUNS_KEY] = {rid: _run_line(rec, rows) for rid, rec in records.items()}
    return record


def _run_line(record: Mapping[str, Any], rows: list[dict[str, Any]]) -> str:
    count = sum(1 for row in rows if row.get("run_id") == record.get("run_id"))
    git = record.get("git") or {}
    commit = record.get("qpbench_commit") or (git.get("commit") if isinstance(git, Mapping) else None) or "-"
    return f"{count} rows; {record.get('date', '-')}; torch threads {record.get('torch_threads', '-')}; commit {commit}"
