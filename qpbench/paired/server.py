"""The measurement server of the paired regression check, run inside one build of qpbench.

    python -m qpbench.paired.server SUITE.toml --solver inhouse --threads 1

The driver (:mod:`qpbench.paired.session`) starts one server in the baseline build and one in the
candidate build and asks them in turn for single timed solves of the same unit (case x solver x
tolerance level), so that both builds meet the machine's load at the same moments. Before it says
it is ready, a server prepares every unit: problems built, setup timed, warm-up solves run. Then it
answers each request line on stdin with one JSON line on its protocol stream:

    {"op": "solve", "unit": 3, "runs": 1}  ->  {"seconds": 0.0123}  or  {"error": "..."}
    {"op": "rows"}                         ->  {"rows": [...]}       one results-table row per unit

``runs`` > 1 times that many solves in a row as one entry (their mean): a reference solve much
shorter than the judged one is timed in runs, so that both timings span alike stretches of load.

It uses this build's own runner pieces (suite expansion, problem building, adapters, accuracy
summary), so its rows are what this build measures. Anything the solvers print goes to stderr:
stdout is the protocol stream. See ``docs/regression.md``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from qpbench.adapters.base import Adapter, SolveOutput, Tolerance
from qpbench.problem import QPBatch
from qpbench.results import json_default
from qpbench.runner.cases import Case, build_batch, expand
from qpbench.runner.environment import environment_record, new_run_id
from qpbench.runner.measure import evaluate, summarize, work_counts
from qpbench.runner.solvers import resolve_adapter, select_solvers
from qpbench.runner.suite import load_suite
from qpbench.timing import calibration_time, pinned_threads, timed_call

ISOLATION = "paired"  # the `worker` column of its rows


@dataclass
class Unit:
    """One timed thing: a solver on a case's batch at one tolerance level."""

    case: Case
    solver: str
    tolerance: str
    batch: QPBatch | None = None
    adapter: Adapter | None = None
    prepared: Any = None
    setup_seconds: float = float("nan")
    warmup_seconds: float = float("nan")  # the last warm-up solve: how long one solve takes
    runs: int = 1  # solves per timed entry (the driver's choice; see solve_runs)
    times: list[float] = field(default_factory=list)
    output: SolveOutput | None = None
    outcome: str = "ok"
    error: str = ""

    def describe(self) -> dict[str, Any]:
        return {
            "case_id": self.case.case_id,
            "solver": self.solver,
            "tolerance": self.tolerance,
            "time_limit": self.case.time_limit,
            "warmup_seconds": self.warmup_seconds,
            "outcome": self.outcome,
            "error": self.error,
        }

    def fail(self, exc: BaseException) -> None:
        self.outcome = "oom" if isinstance(exc, MemoryError) else "failed"
        self.error = f"{type(exc).__name__}: {exc}"[:500]


def prepare_units(cases: list[Case], solvers: list[str]) -> list[Unit]:
    """Every (case, solver, tolerance) of the suite whose case selects one of ``solvers``."""
    units = []
    for case in cases:
        selected = select_solvers(case.solvers, case.exclude_solvers)
        chosen = [s for s in solvers if s in selected]
        if not chosen:
            continue
        try:
            batch = build_batch(case)
        except Exception as exc:
            failed = [Unit(case, s, t) for s in chosen for t in case.tolerances]
            for unit in failed:
                unit.fail(exc)
            units += failed
            continue
        for solver in chosen:
            units += [_prepared_unit(case, batch, solver, tolerance) for tolerance in case.tolerances]
    return units


def _prepared_unit(case: Case, batch: QPBatch, solver: str, tolerance: str) -> Unit:
    unit = Unit(case, solver, tolerance, batch)
    try:
        adapter = resolve_adapter(solver)
        available, why = adapter.availability()
        reason = adapter.unsupported_reason(batch) if available else None
        if not available or reason:
            unit.outcome = "unavailable" if not available else "unsupported"
            unit.error = why or reason or ""
            return unit
        level = Tolerance.parse(tolerance)
        unit.adapter = adapter
        unit.prepared, unit.setup_seconds = timed_call(
            lambda: adapter.setup(batch, level, case.time_limit), batch.device
        )
        for _ in range(max(case.warmups, 1)):  # one-off costs must not land in the first pair
            _, unit.warmup_seconds = timed_call(lambda: adapter.solve(unit.prepared), batch.device)
    except Exception as exc:
        unit.fail(exc)
    return unit


def solve_runs(unit: Unit, runs: int = 1) -> dict[str, Any]:
    """One timed entry of a ready unit: ``runs`` solves in a row, their mean (a ``solve`` request)."""
    if unit.outcome != "ok" or unit.adapter is None or unit.batch is None:
        return {"error": f"unit not ready: {unit.outcome}: {unit.error}"}
    if runs < 1:
        return {"error": f"runs must be >= 1, got {runs}"}
    adapter, prepared = unit.adapter, unit.prepared

    def solves() -> SolveOutput:
        for _ in range(runs - 1):
            adapter.solve(prepared)
        return adapter.solve(prepared)

    try:
        output, seconds = timed_call(solves, unit.batch.device)
    except Exception as exc:
        unit.fail(exc)
        return {"error": unit.error}
    unit.output = output
    unit.runs = runs
    unit.times.append(seconds / runs)
    return {"seconds": seconds / runs}


def unit_row(unit: Unit, run_id: str, threads: int, calibration: float | None) -> dict[str, Any]:
    """The unit's results-table row: its timings and the accuracy of its last solve."""
    case, batch = unit.case, unit.batch
    row: dict[str, Any] = {
        "run_id": run_id,
        "suite": case.suite,
        "case_id": case.case_id,
        "family": case.family,
        "problem": case.problem,
        "n": batch.n if batch is not None else case.n,
        "m": batch.m if batch is not None else case.m,
        "k": batch.k if batch is not None else case.k,
        "batch_size": case.batch_size,
        "seed": case.seed,
        "dtype": case.dtype,
        "device": case.device,
        "tolerance": unit.tolerance,
        "tolerance_eps": Tolerance.parse(unit.tolerance).eps,
        "solver": unit.solver,
        "warmups": case.warmups,
        "torch_threads": threads,
        "worker": ISOLATION,
        "reference": "none",
        "outcome": unit.outcome,
        "error": unit.error,
        "calibration_time": calibration,
        "solves_per_time": unit.runs,
    }
    if unit.outcome == "ok" and unit.output is not None and batch is not None and unit.adapter is not None:
        out = unit.output
        raw = {
            "solver_version": unit.adapter.version(),
            "setup_times": [unit.setup_seconds],
            "solve_times": unit.times,
            "torch_threads": threads,
            "peak_memory_bytes": None,
            **evaluate(batch, out.z, out.lam, out.nu, out.status, out.iterations),
            "work": work_counts(out.info),
        }
        expected = str(batch.meta.get("expected_status", "solved"))
        row.update(summarize(raw, Tolerance.parse(unit.tolerance).eps, None, expected))
    row["timestamp"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    return row


def calibration_times(units: list[Unit]) -> dict[str, float]:
    """The runner's calibration kernel for every case with a batch (the ``calibration_time``
    column), so that these rows also serve the regression check's in-run-reference comparison."""
    found: dict[str, float] = {}
    for unit in units:
        batch = unit.batch
        if batch is not None and unit.case.case_id not in found:
            found[unit.case.case_id] = calibration_time(batch.batch_size, batch.n, dtype=batch.dtype,
                                                        device=batch.device)
    return found


def protocol_stream() -> TextIO:
    """The real stdout, kept for the protocol; fd 1 (and ``sys.stdout``) then point at stderr, so
    that whatever a solver prints, from Python or C, cannot corrupt a reply."""
    stream = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return stream


def serve(units: list[Unit], run_id: str, threads: int, requests: TextIO, replies: TextIO) -> None:
    def reply(message: dict[str, Any]) -> None:
        replies.write(json.dumps(message, default=json_default) + "\n")
        replies.flush()

    for line in requests:
        if not line.strip():
            continue
        try:
            request = json.loads(line)
            if request.get("op") == "solve":
                reply(solve_runs(units[int(request["unit"])], int(request.get("runs", 1))))
            elif request.get("op") == "rows":
                calibration = calibration_times(units)
                reply({"rows": [unit_row(u, run_id, threads, calibration.get(u.case.case_id)) for u in units]})
            else:
                reply({"error": f"unknown request {request!r}"})
        except Exception as exc:  # a bad request must not take the build's other answers down
            reply({"error": f"{type(exc).__name__}: {exc}"})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m qpbench.paired.server", description=__doc__)
    parser.add_argument("suite", type=Path, help="suite file (the same for both builds)")
    parser.add_argument("--solver", action="append", required=True, help="solver to time (repeatable)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: the suite's)")
    args = parser.parse_args(argv)
    replies = protocol_stream()
    try:
        suite = load_suite(args.suite)
        threads = suite.threads if args.threads is None else args.threads
        run_id = new_run_id()
        with pinned_threads(threads or None) as used:
            units = prepare_units(expand(suite), args.solver)
            record = environment_record(run_id, suite.to_record(), used, ISOLATION)
            replies.write(json.dumps({"ready": True, "units": [u.describe() for u in units], "environment": record},
                                     default=json_default) + "\n")
            replies.flush()
            serve(units, run_id, used, sys.stdin, replies)
    except Exception as exc:
        traceback.print_exc()
        replies.write(json.dumps({"error": f"{type(exc).__name__}: {exc}"}) + "\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
