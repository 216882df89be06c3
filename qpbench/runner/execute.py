"""Running a suite: cases x solvers x tolerance levels, one results row each, appended as it finishes.

The steps: check the suite against the installation (:mod:`qpbench.runner.check`, nothing runs
if any value is wrong); repair a torn last line of ``results.jsonl``; find the rows already done,
refusing rows measured differently (:mod:`qpbench.runner.resume`); then per case, build the
problems once and give them to every solver, with the reference optimum and the calibration time
computed once. This run's machine record is added to ``environment.json`` before its first row
(a run with nothing left to do writes no record), beside the records of earlier runs.
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
    ENVIRONMENT_FILE,
    RESULTS_FILE,
    ROW_FAILED,
    ROW_OK,
    ROW_UNAVAILABLE,
    ROW_UNSUPPORTED,
    read_rows,
    repair_results,
    save_run_record,
    write_row,
)
from qpbench.runner.cases import Case, build_batch
from qpbench.runner.check import RunPlan, plan_run
from qpbench.runner.environment import environment_record, new_run_id
from qpbench.runner.measure import summarize
from qpbench.runner.progress import Progress
from qpbench.runner.resume import Key, check_resume
from qpbench.runner.solvers import SolverRef, resolve_adapter
from qpbench.runner.suite import Suite
from qpbench.runner.worker import Executor, MeasurementError, make_worker, worker_kind
from qpbench.status import Status
from qpbench.timing import calibration_time, pinned_threads


@dataclass
class RunOptions:
    out_dir: Path
    fresh: bool = False
    in_process: bool = False
    quiet: bool = False
    threads: int | None = None  # None: the suite's setting (1 unless the suite says; 0 = torch's default)
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
    repairs: list[str] = field(default_factory=list)  # what was repaired in results.jsonl


def run_suite(suite: Suite, options: RunOptions, log: Callable[[str], None] | None = None) -> RunSummary:
    """Run every pending (case, solver, tolerance) of ``suite`` into ``options.out_dir``.

    Raises ValueError before any work when the suite names something that does not exist, and
    ResumeConflictError (a ValueError) when the directory holds rows measured differently."""
    say = log or (lambda text: print(text, file=sys.stderr))
    plan = plan_run(suite)
    out = Path(options.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if options.fresh:
        _discard_results(out)
    summary = RunSummary(run_id=new_run_id(), out_dir=out, time_limits={c.case_id: c.time_limit for c in plan.cases})
    summary.repairs = repair_results(out)
    for repair in summary.repairs:
        say(f"warning: {out / RESULTS_FILE} repaired: {repair}")
    threads = suite.threads if options.threads is None else options.threads
    with pinned_threads(threads or None) as used_threads:
        kind = worker_kind(options.in_process)
        record = RunRecord(out, environment_record(summary.run_id, suite.to_record(), used_threads, kind))
        record.data["solver_versions"] = {ref.name: ref.version for refs in plan.solvers.values() for ref in refs}
        done = check_resume(
            out, read_rows(out), _planned_settings(plan), record.row_settings(), record.data["solver_versions"]
        )
        # the worker pins the count resolved here, so that '0 = torch's default' means one number
        worker = make_worker(options.in_process, used_threads, options.grace)
        progress = Progress(total=plan.units, quiet=options.quiet)
        completed = False
        try:
            for case in plan.cases:
                _run_case(case, plan.solvers_for(case), done, worker, record, progress, summary, say)
            completed = True
        finally:
            progress.close()
            worker.close()
            record.finish(summary, completed)
    return summary


def _discard_results(out: Path) -> None:
    """--fresh: the earlier rows and the records of the runs that wrote them."""
    for name in (RESULTS_FILE, ENVIRONMENT_FILE):
        (out / name).unlink(missing_ok=True)


def _planned_settings(plan: RunPlan) -> dict[Key, dict[str, Any]]:
    """For each key the plan measures: the settings its row must have been measured with."""
    planned: dict[Key, dict[str, Any]] = {}
    for case in plan.cases:
        settings = {"repeats": case.repeats, "warmups": case.warmups, "time_limit": case.time_limit}
        for ref in plan.solvers_for(case):
            for tolerance in case.tolerances:
                planned[(case.case_id, ref.name, tolerance)] = settings
    return planned


class RunRecord:
    """This run's entry in environment.json: saved before its first row, completed at the end."""

    def __init__(self, out: Path, data: dict[str, Any]) -> None:
        self.out = out
        self.data = data
        self.saved = False

    def row_settings(self) -> dict[str, Any]:
        """The run-wide settings every row carries (and every earlier row must share)."""
        return {
            "torch_threads": self.data["torch_threads"],
            "machine": self.data["machine"],
            "qpbench_version": self.data["libraries"].get("qpbench") or "",
            "qpbench_commit": self.data["qpbench_commit"],
        }

    def before_row(self) -> None:
        if not self.saved:
            save_run_record(self.out, self.data)
            self.saved = True

    def finish(self, summary: RunSummary, completed: bool) -> None:
        if not self.saved:
            return
        self.data["ended"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        self.data["completed"] = completed  # False: interrupted (Ctrl-C) or stopped by an error
        self.data["rows_written"] = summary.written
        save_run_record(self.out, self.data)


def _run_case(
    case: Case,
    solvers: list[SolverRef],
    done: set[Key],
    worker: Executor,
    record: RunRecord,
    progress: Progress,
    summary: RunSummary,
    say: Callable[[str], None],
) -> None:
    pending = [(ref, t) for ref in solvers for t in case.tolerances if (case.case_id, ref.name, t) not in done]
    skipped = len(solvers) * len(case.tolerances) - len(pending)
    progress.advance(skipped)
    summary.skipped += skipped
    if not pending:
        return
    progress.describe(case.label())
    base = _base_row(case, record, worker.kind)

    def emit(ref: SolverRef, tolerance: str, fields: dict[str, Any]) -> None:
        row = {
            **base,
            "solver": ref.name,
            "solver_version": ref.version,
            "tolerance": tolerance,
            "tolerance_eps": Tolerance.parse(tolerance).eps,
            **fields,
            "timestamp": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        }
        record.before_row()
        write_row(record.out, row)
        summary.written += 1
        summary.outcomes[row["outcome"]] = summary.outcomes.get(row["outcome"], 0) + 1
        progress.advance(1)

    if case.device == "cuda" and not torch.cuda.is_available():
        for ref, tol in pending:
            emit(ref, tol, {"outcome": ROW_UNSUPPORTED, "error": "no CUDA device on this machine"})
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

    for ref in dict.fromkeys(r for r, _ in pending):
        tolerances = [t for r, t in pending if r == ref]
        reason = _cannot_run(ref.spec, batch)
        if reason is not None:
            for tol in tolerances:
                emit(ref, tol, {"outcome": reason[0], "error": reason[1]})
            continue
        for tol in tolerances:
            progress.describe(f"{case.label()} | {ref.name} {tol}")
            try:
                raw = worker.measure(ref.spec, batch, tol, case.time_limit, case.warmups, case.repeats)
            except MeasurementError as exc:
                emit(ref, tol, {"outcome": exc.outcome, "error": exc.reason, "expected_status": expected})
                continue
            fields = summarize(raw, Tolerance.parse(tol).eps, reference, expected)
            emit(ref, tol, {"outcome": ROW_OK, "error": "", **fields})


def _base_row(case: Case, record: RunRecord, worker_kind: str) -> dict[str, Any]:
    return {
        "run_id": record.data["run_id"],
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
        "repeats": case.repeats,
        "warmups": case.warmups,
        "time_limit": case.time_limit,
        **record.row_settings(),
        "worker": worker_kind,
        "reference": "none",
    }


def _cannot_run(spec: str, batch: QPBatch) -> tuple[str, str] | None:
    """(outcome, reason) when the solver is unavailable or its capabilities exclude the batch."""
    try:
        adapter = resolve_adapter(spec)
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
