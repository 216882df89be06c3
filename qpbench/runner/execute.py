"""Running a suite: cases x solvers x tolerance levels, one results row each, appended as it finishes.

The steps: check the suite against the installation (:mod:`qpbench.runner.check`, nothing runs
if any value is wrong); repair a torn last line of ``results.jsonl``; find the rows already done,
refusing rows measured differently (:mod:`qpbench.runner.resume`); then hand each case's pending
rows to the case executor (:mod:`qpbench.runner.executors`: here, or on a Dask cluster), which
builds the problems once per case, gives them to every solver, and passes back each row as it
finishes; this process appends it. This run's machine record is added to ``environment.json``
before its first row (a run with nothing left to do writes no record), beside the records of
earlier runs.
"""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qpbench.results import ENVIRONMENT_FILE, RESULTS_FILE, read_rows, repair_results, save_run_record, write_row
from qpbench.runner.check import RunPlan, plan_run
from qpbench.runner.environment import environment_record, new_run_id
from qpbench.runner.executors import (
    DASK,
    ExecutorSettings,
    check_settings,
    executor_kind,
    make_executor,
    parse_executor,
)
from qpbench.runner.jobs import CaseJob, row_key_of
from qpbench.runner.progress import Progress
from qpbench.runner.resume import Key, check_resume
from qpbench.runner.suite import Suite
from qpbench.timing import pinned_threads


@dataclass
class RunOptions:
    out_dir: Path
    fresh: bool = False
    in_process: bool = False
    quiet: bool = False
    threads: int | None = None  # None: the suite's setting (1 unless the suite says; 0 = torch's default)
    grace: float = 5.0  # seconds allowed past the time limit per step before a worker is stopped
    executor: str = "local"  # local, dask (a LocalCluster here) or dask=ADDRESS (docs/dask.md)
    workers: int | None = None  # LocalCluster workers for executor 'dask' (None: one per usable core / threads)


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
    choice = parse_executor(options.executor)
    check_settings(choice, options.in_process, options.workers)
    if choice.name == DASK:  # before --fresh deletes anything
        from qpbench.runner.dask_executor import require_distributed

        require_distributed()
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
        kind = executor_kind(choice, options.in_process)
        record = RunRecord(out, environment_record(summary.run_id, suite.to_record(), used_threads, kind))
        record.data["solver_versions"] = {ref.name: ref.version for refs in plan.solvers.values() for ref in refs}
        rows = read_rows(out)
        done = check_resume(out, rows, _planned_settings(plan), record.row_settings(), record.data["solver_versions"])
        _note_other_machines(rows, record.data["machine"], kind, say)
        jobs = _pending_jobs(plan, done, _run_fields(record, kind))
        summary.skipped = plan.units - sum(len(job.pending) for job in jobs)
        if not jobs:
            return summary
        # the worker pins the count resolved here, so that '0 = torch's default' means one number
        settings = ExecutorSettings(
            choice, options.in_process, used_threads, options.grace, options.workers, _versions(record, plan)
        )
        executor = make_executor(settings, say)
        progress = Progress(total=plan.units, quiet=options.quiet)
        progress.advance(summary.skipped)
        completed = False
        try:
            executor.start()
            record.data.update(executor.record())
            executor.run(jobs, RowWriter(record, progress, summary, say))
            completed = True
        finally:
            progress.close()
            record.data.update(executor.record())
            executor.close()
            record.finish(summary, completed)
    return summary


def _pending_jobs(plan: RunPlan, done: set[Key], run_fields: dict[str, Any]) -> list[CaseJob]:
    """Per case, the (solver, tolerance) rows not done yet; cases with none are left out."""
    jobs = []
    for case in plan.cases:
        pending = tuple(
            (ref, tolerance)
            for ref in plan.solvers_for(case)
            for tolerance in case.tolerances
            if row_key_of(case, ref, tolerance) not in done
        )
        if pending:
            jobs.append(CaseJob(len(jobs), case, pending, run_fields))
    return jobs


def _run_fields(record: RunRecord, kind: str) -> dict[str, Any]:
    """Fields every row of this run carries (a cluster worker puts its own machine in)."""
    return {"run_id": record.data["run_id"], **record.row_settings(), "worker": kind}


def _versions(record: RunRecord, plan: RunPlan) -> dict[str, Any]:
    """What every machine measuring this run must run: this record's code and versions."""
    return {
        "qpbench_commit": record.data["qpbench_commit"],
        "python": record.data["python"],
        "libraries": dict(record.data["libraries"]),
        "solvers": {ref.spec: ref.version for refs in plan.solvers.values() for ref in refs},
    }


def _note_other_machines(rows: list[dict[str, Any]], machine: str, kind: str, say: Callable[[str], None]) -> None:
    """Rows of other machines count as done (reports keep each machine apart); say so when a local
    run resumes them, since its own rows will be reported beside, not with, theirs."""
    if kind == DASK:
        return
    others = sorted({str(r.get("machine")) for r in rows if r.get("machine") and r.get("machine") != machine})
    if others:
        count = sum(1 for r in rows if r.get("machine") in others)
        say(
            f"note: {count} row(s) already done were measured on other machines ({'; '.join(others)}); they count "
            "as done, and reports show each machine's rows apart"
        )


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


class RowWriter:
    """The sink of this run's rows: appends each to results.jsonl (the run record first), counts
    it, and moves the progress bar."""

    def __init__(self, record: RunRecord, progress: Progress, summary: RunSummary, say: Callable[[str], None]) -> None:
        self.record = record
        self.progress = progress
        self.summary = summary
        self.say = say

    def row(self, row: dict[str, Any]) -> None:
        self.record.before_row()
        write_row(self.record.out, row)
        self.summary.written += 1
        self.summary.outcomes[row["outcome"]] = self.summary.outcomes.get(row["outcome"], 0) + 1
        self.progress.advance(1)

    def started(self, row: dict[str, Any]) -> None:
        what = row.get("problem") or f"{row.get('family')} n={row.get('n')}"
        self.progress.describe(f"{what} B={row.get('batch_size')} | {row.get('solver')} {row.get('tolerance')}")

    def warn(self, message: str) -> None:
        self.say(f"warning: {message}")

    def case_failed(self, job: CaseJob, message: str) -> None:
        self.summary.case_errors.append(message)
        self.say(f"warning: {message}; its rows are not written (a re-run retries it)")
        self.progress.advance(len(job.pending))


