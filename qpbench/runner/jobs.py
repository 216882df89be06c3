"""One case's pending rows, measured where the case runs: here, or on a Dask worker.

A :class:`CaseJob` is everything a machine needs to measure a case: the case, its pending
(solver, tolerance) pairs in order, and the run-wide fields every row carries. :func:`run_case`
does the work of the machine that measures: builds the problems once, computes the reference
optimum and the calibration time (a property of that machine, so it is measured beside the
solvers), hands each measurement to a measurement executor (:mod:`qpbench.runner.worker`) and
passes each row to a :class:`CaseSink` as it finishes. The case is the unit a cluster schedules,
so every solver of a case is timed on the same machine and a machine's rows compare solvers on
the same cases (``docs/dask.md``).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch

from qpbench.adapters.base import Tolerance
from qpbench.problem import QPBatch
from qpbench.results import ROW_CRASHED, ROW_FAILED, ROW_OK, ROW_UNAVAILABLE, ROW_UNSUPPORTED
from qpbench.runner.cases import Case, build_batch
from qpbench.runner.measure import summarize
from qpbench.runner.resume import Key
from qpbench.runner.solvers import SolverRef, resolve_adapter
from qpbench.runner.worker import Executor, MeasurementError
from qpbench.status import Status
from qpbench.timing import calibration_time


@dataclass(frozen=True)
class CaseJob:
    """A case and the rows of it this run still has to measure, in the order they are measured."""

    index: int  # position in the run, so that a cluster's answers find their job
    case: Case
    pending: tuple[tuple[SolverRef, str], ...]  # (solver, tolerance level)
    base: dict[str, Any] = field(default_factory=dict)  # run-wide row fields (run id, settings, worker kind)

    def keys(self) -> list[Key]:
        return [row_key_of(self.case, ref, tolerance) for ref, tolerance in self.pending]

    def without(self, finished: set[Key]) -> CaseJob:
        """The same job less the rows in ``finished`` (a case resumed after its worker was lost)."""
        kept = tuple((ref, t) for ref, t in self.pending if row_key_of(self.case, ref, t) not in finished)
        return CaseJob(self.index, self.case, kept, self.base)


def row_key_of(case: Case, ref: SolverRef, tolerance: str) -> Key:
    return (case.case_id, ref.name, tolerance)


class CaseSink(Protocol):
    """Where a case's rows and messages go: the results file here, or the client of a cluster."""

    def row(self, row: dict[str, Any]) -> None:
        """A finished row."""
        ...

    def started(self, row: dict[str, Any]) -> None:
        """A measurement starts; ``row`` is the one it gets if the machine measuring it is lost
        (outcome crashed, the reason still empty)."""
        ...

    def warn(self, message: str) -> None: ...

    def case_failed(self, job: CaseJob, message: str) -> None:
        """The case could not be run (its problems could not be built): none of its rows is written."""
        ...


def run_case(job: CaseJob, measurer: Executor, sink: CaseSink) -> None:
    """Measure every pending row of ``job`` and hand each to ``sink`` as it finishes."""
    case = job.case
    base = _case_row(job)

    def make_row(ref: SolverRef, tolerance: str, fields: dict[str, Any]) -> dict[str, Any]:
        return {
            **base,
            "solver": ref.name,
            "solver_version": ref.version,
            "tolerance": tolerance,
            "tolerance_eps": Tolerance.parse(tolerance).eps,
            **fields,
            "timestamp": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        }

    def emit(ref: SolverRef, tolerance: str, fields: dict[str, Any]) -> None:
        sink.row(make_row(ref, tolerance, fields))

    if case.device == "cuda" and not torch.cuda.is_available():
        for ref, tol in job.pending:
            emit(ref, tol, {"outcome": ROW_UNSUPPORTED, "error": "no CUDA device on this machine"})
        return
    try:
        batch = build_batch(case)
    except Exception as exc:
        sink.case_failed(job, f"{case.case_id}: building the problems failed: {type(exc).__name__}: {exc}")
        return
    base.update({"n": batch.n, "m": batch.m, "k": batch.k})
    expected = str(batch.meta.get("expected_status", "solved"))
    reference, reference_name = _reference(case, batch, sink)
    base["reference"] = reference_name
    base["calibration_time"] = calibration_time(batch.batch_size, batch.n, dtype=batch.dtype, device=batch.device)

    for ref in dict.fromkeys(r for r, _ in job.pending):
        tolerances = [t for r, t in job.pending if r == ref]
        reason = _cannot_run(ref.spec, batch)
        if reason is not None:
            for tol in tolerances:
                emit(ref, tol, {"outcome": reason[0], "error": reason[1]})
            continue
        for tol in tolerances:
            sink.started(make_row(ref, tol, {"outcome": ROW_CRASHED, "error": "", "expected_status": expected}))
            try:
                raw = measurer.measure(ref.spec, batch, tol, case.time_limit, case.warmups, case.repeats)
            except MeasurementError as exc:
                emit(ref, tol, {"outcome": exc.outcome, "error": exc.reason, "expected_status": expected})
                continue
            fields = summarize(raw, Tolerance.parse(tol).eps, reference, expected)
            emit(ref, tol, {"outcome": ROW_OK, "error": "", **fields})


def _case_row(job: CaseJob) -> dict[str, Any]:
    case = job.case
    return {
        **job.base,
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


def _reference(case: Case, batch: QPBatch, sink: CaseSink) -> tuple[np.ndarray | None, str]:
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
        sink.warn(
            f"{case.case_id}: reference solve failed ({type(exc).__name__}: {exc}); no objective error for this case"
        )
        return None, "none"
    objective = np.asarray(torch.as_tensor(sol.objective).double().cpu(), dtype=float).reshape(-1)
    status = getattr(sol, "status", None)
    if status is not None:
        solved = np.array([int(s) == int(Status.SOLVED) for s in status], dtype=bool)
        objective = np.where(solved, objective, np.nan)
    return objective, str(getattr(sol, "solver", "") or "reference_solve")
