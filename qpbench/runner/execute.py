"""Running a suite: cases x solvers x tolerance levels, one results row each, appended as it finishes.

Per case, the problems are built once and given to every solver; the reference optimum and the
calibration time are computed once. Rows already in the output directory (same case_id, solver,
tolerance) are skipped, so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from qpbench.adapters.base import Tolerance
from qpbench.problem import QPBatch
from qpbench.results import (
    RESULTS_FILE,
    ROW_FAILED,
    ROW_OK,
    ROW_UNAVAILABLE,
    ROW_UNSUPPORTED,
    finished_keys,
    load_environment,
    write_environment,
    write_row,
)
from qpbench.runner.cases import Case, build_batch, expand
from qpbench.runner.environment import environment_record, new_run_id
from qpbench.runner.measure import summarize
from qpbench.runner.progress import Progress
from qpbench.runner.solvers import check_solver_names, resolve_adapter, select_solvers
from qpbench.runner.suite import Suite
from qpbench.runner.worker import MeasurementError, make_worker
from qpbench.status import Status
from qpbench.timing import calibration_time, pinned_threads

KEY_COLUMNS = ("case_id", "solver", "tolerance")


@dataclass
class RunOptions:
    out_dir: Path
    fresh: bool = False
    in_process: bool = False
    quiet: bool = False
    threads: int | None = None  # None: the suite's setting (0 = torch's default)
    grace: float = 5.0  # seconds allowed past the time limit per step before a worker is stopped


@dataclass
class RunSummary:
    run_id: str
    out_dir: Path
    written: int = 0
    skipped: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    case_errors: list[str] = field(default_factory=list)
    time_limits: dict[str, float] = field(default_factory=dict)  # case_id -> the case's time limit


def run_suite(suite: Suite, options: RunOptions, log: Callable[[str], None] | None = None) -> RunSummary:
    """Run every pending (case, solver, tolerance) of ``suite`` into ``options.out_dir``."""
    say = log or (lambda text: print(text, file=sys.stderr))
    out = Path(options.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if options.fresh and (out / RESULTS_FILE).exists():
        (out / RESULTS_FILE).unlink()
    cases = expand(suite)
    # select once per distinct selection, not per case ('all-available' checks every adapter)
    solver_names = {sel: select_solvers(*sel) for sel in dict.fromkeys(_selection(c) for c in cases)}
    check_solver_names(sorted({name for names in solver_names.values() for name in names}))

    threads = suite.threads if options.threads is None else options.threads
    run_id = new_run_id()
    summary = RunSummary(run_id=run_id, out_dir=out, time_limits={c.case_id: c.time_limit for c in cases})
    done = finished_keys(out, KEY_COLUMNS)
    worker = make_worker(options.in_process, threads or None, options.grace)
    with pinned_threads(threads or None) as used_threads:
        record = environment_record(run_id, suite.to_record(), used_threads, worker.kind)
        _save_environment(out, record)
        units = sum(len(solver_names[_selection(c)]) * len(c.tolerances) for c in cases)
        progress = Progress(total=units, quiet=options.quiet)
        try:
            for case in cases:
                _run_case(
                    case,
                    solver_names[_selection(case)],
                    done,
                    worker,
                    record,
                    out,
                    progress,
                    summary,
                    used_threads,
                    say,
                )
        finally:
            progress.close()
            worker.close()
            _save_environment(out, record)
    return summary


def _selection(case: Case) -> tuple[tuple[str, ...], tuple[str, ...]]:
    return case.solvers, case.exclude_solvers


def _save_environment(out: Path, record: dict[str, Any]) -> None:
    """Write this run's record, keeping the ids of earlier runs whose rows the table still holds."""
    previous = load_environment(out)
    history = list(previous.get("previous_runs", []))
    if previous.get("run_id") and previous.get("run_id") != record["run_id"]:
        history.append({k: previous.get(k) for k in ("run_id", "date", "git", "torch_threads")})
    write_environment(out, {**record, "previous_runs": history})


def _run_case(
    case: Case,
    solvers: list[str],
    done: set[tuple[Any, ...]],
    worker: Any,
    record: dict[str, Any],
    out: Path,
    progress: Progress,
    summary: RunSummary,
    threads: int,
    say: Callable[[str], None],
) -> None:
    pending = [(s, t) for s in solvers for t in case.tolerances if (case.case_id, s, t) not in done]
    skipped = len(solvers) * len(case.tolerances) - len(pending)
    progress.advance(skipped)
    summary.skipped += skipped
    if not pending:
        return
    progress.describe(case.label())
    base = _base_row(case, record["run_id"], threads, worker.kind)

    def emit(solver: str, tolerance: str, fields: dict[str, Any]) -> None:
        row = {
            **base,
            "solver": solver,
            "tolerance": tolerance,
            "tolerance_eps": Tolerance.parse(tolerance).eps,
            **fields,
            "timestamp": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        }
        write_row(out, row)
        summary.written += 1
        summary.outcomes[row["outcome"]] = summary.outcomes.get(row["outcome"], 0) + 1
        progress.advance(1)

    if case.device == "cuda" and not torch.cuda.is_available():
        for solver, tol in pending:
            emit(solver, tol, {"outcome": ROW_UNSUPPORTED, "error": "no CUDA device on this machine"})
        return
    try:
        batch = build_batch(case)
    except Exception as exc:
        message = f"{case.case_id}: building the problems failed: {type(exc).__name__}: {exc}"
        summary.case_errors.append(message)
        say(f"warning: {message}; its rows are not written (a re-run retries it)")
        progress.advance(len(pending))
        return
    base.update({"n": batch.n, "m": batch.m, "k": batch.k})
    expected = str(batch.meta.get("expected_status", "solved"))
    reference, reference_name = _reference(case, batch, say)
    base["reference"] = reference_name
    base["calibration_time"] = calibration_time(batch.batch_size, batch.n, dtype=batch.dtype, device=batch.device)

    for solver in dict.fromkeys(s for s, _ in pending):
        tolerances = [t for s, t in pending if s == solver]
        reason = _cannot_run(solver, batch)
        if reason is not None:
            for tol in tolerances:
                emit(solver, tol, {"outcome": reason[0], "error": reason[1]})
            continue
        for tol in tolerances:
            progress.describe(f"{case.label()} | {solver} {tol}")
            try:
                raw = worker.measure(solver, batch, tol, case.time_limit, case.warmups, case.repeats)
            except MeasurementError as exc:
                emit(solver, tol, {"outcome": exc.outcome, "error": exc.reason, "expected_status": expected})
                continue
            fields = summarize(raw, Tolerance.parse(tol).eps, reference, expected)
            record["solver_versions"][solver] = fields.get("solver_version", "")
            emit(solver, tol, {"outcome": ROW_OK, "error": "", **fields})


def _base_row(case: Case, run_id: str, threads: int, worker_kind: str) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "suite": case.suite,
        "case_id": case.case_id,
        "family": case.family,
        "problem": case.problem,
        "n": case.n,
        "m": case.m,
        "k": case.k,
        "batch_size": case.batch_size,
        "seed": case.seed,
        "dtype": case.dtype,
        "device": case.device,
        "warmups": case.warmups,
        "torch_threads": threads,
        "worker": worker_kind,
        "reference": "none",
    }


def _cannot_run(solver: str, batch: QPBatch) -> tuple[str, str] | None:
    """(outcome, reason) when the solver is unavailable or its capabilities exclude the batch."""
    try:
        adapter = resolve_adapter(solver)
        ok, why = adapter.availability()
        if not ok:
            return ROW_UNAVAILABLE, why or "not available"
        reason = adapter.unsupported_reason(batch)
    except Exception as exc:
        return ROW_FAILED, f"capability check failed: {type(exc).__name__}: {exc}"
    return (ROW_UNSUPPORTED, reason) if reason else None


def _reference(case: Case, batch: QPBatch, say: Callable[[str], None]) -> tuple[np.ndarray | None, str]:
    """Reference optimum per problem, and what it is (published / the reference solver / none)."""
    meta = batch.meta
    if meta.get("reference_objective") is not None:
        offset = float(meta.get("objective_offset", 0.0) or 0.0)
        value = float(meta["reference_objective"]) - offset  # published values include the constant
        return np.full(batch.batch_size, value), "published"
    if not case.reference:
        return None, "none"
    try:
        from qpbench.reference import reference_solve

        sol = reference_solve(batch)
    except Exception as exc:
        say(
            f"warning: {case.case_id}: reference solve failed ({type(exc).__name__}: {exc}); "
            "no objective error for this case"
        )
        return None, "none"
    objective = np.asarray(torch.as_tensor(sol.objective).double().cpu(), dtype=float).reshape(-1)
    status = getattr(sol, "status", None)
    if status is not None:
        solved = np.array([int(s) == int(Status.SOLVED) for s in status], dtype=bool)
        objective = np.where(solved, objective, np.nan)
    return objective, str(getattr(sol, "solver", "") or "reference_solve")
