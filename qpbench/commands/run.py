"""Run a benchmark suite: every case x solver x tolerance level, one results row each.

SUITE is a name in problems/ (see `qpbench suites`) or a path to a .toml file (format:
docs/suite-format.md). Every value is checked before anything runs. Rows are appended to
OUT/results.jsonl as they finish, so Ctrl-C keeps every finished row and running the same command
again resumes (skips finished rows); a resume whose settings differ from the rows there (threads,
repeats, warm-ups, time limit, solver or qpbench version) refuses and says what differs;
--fresh starts over. Each measurement runs in a worker process, so a solver that crashes or hangs
costs only its own row (--in-process trades that protection for lower overhead, easier debugging,
and one CUDA context).

--executor dask runs the cases on a Dask LocalCluster on this machine (--workers N of them),
--executor dask=ADDRESS on an existing Dask scheduler (tcp://host:8786 or a scheduler file);
every row names the machine that measured it, and summaries and reports keep machines apart
(docs/dask.md; needs pip install 'qpbench[dask]'). A run resumes under either executor.

Solvers: adapter names (`qpbench solvers`), plugins installed under the entry-point group
qpbench.adapters, or module:Class from the working directory (docs/adding-a-solver.md).

At the end: a summary per solver and tolerance level (success rate, failure-penalized shifted
geometric mean time, 1.0 = fastest) and the report (qpbench report) unless --no-report.
Exit codes: 0 the suite ran (solver failures are results), 1 the report step failed,
2 bad input (including a refused resume), 130 interrupted.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from qpbench.runner import Suite

NAME = "run"
HELP = "run a benchmark suite (default: the 'default' suite) and write results + report"
ORDER = 10


def _csv(text: str) -> list[str]:
    items = [part.strip() for part in text.split(",") if part.strip()]
    if not items:
        raise argparse.ArgumentTypeError("expected a comma-separated list")
    return items


def _int_csv(text: str) -> list[int]:
    try:
        return [int(item) for item in _csv(text)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "suite", nargs="?", default="default", metavar="SUITE", help="suite name or .toml path"
    )
    parser.add_argument(
        "--solvers", type=_csv, help="comma-separated adapter names, module:Class specs, or all-available"
    )
    parser.add_argument("--batch-sizes", type=_int_csv, help="comma-separated batch sizes, e.g. 1,64")
    parser.add_argument("--device", type=_csv, help="cpu, cuda or cpu,cuda")
    parser.add_argument("--dtype", type=_csv, help="float32, float64 or both")
    parser.add_argument("--tolerance", type=_csv, help="low, mid, high (comma-separated)")
    parser.add_argument("--repeats", type=int, help="timed repeats per measurement")
    parser.add_argument("--warmups", type=int, help="untimed warm-up runs per measurement")
    parser.add_argument("--time-limit", type=float, help="seconds per setup or solve step")
    parser.add_argument("--out", type=Path, help="results directory (default: results/<suite>)")
    parser.add_argument(
        "--threads", type=int, help="torch threads to pin (default: the suite's 'threads', else 1; 0 = torch's default)"
    )
    parser.add_argument(
        "--fresh", action="store_true", help="discard the rows and run records in --out and start over"
    )
    parser.add_argument(
        "--check", action="store_true", help="check the suite against this installation, list what would run, stop"
    )
    parser.add_argument(
        "--in-process", action="store_true", help="measure in this process (no crash isolation)"
    )
    parser.add_argument(
        "--executor",
        default="local",
        metavar="local|dask[=ADDRESS]",
        help="where cases run: local (default), dask (a LocalCluster here) or dask=ADDRESS (an existing "
        "scheduler, tcp://host:port or a scheduler .json file); docs/dask.md",
    )
    parser.add_argument(
        "--workers",
        type=int,
        help="workers of the LocalCluster that --executor dask starts (default: usable cores / threads)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--no-report", action="store_true", help="skip writing the report")


def main(args: argparse.Namespace) -> int:
    from qpbench.runner import RunOptions, apply_overrides, load_suite, run_suite

    suite = load_suite(args.suite)
    overrides = {
        "solvers": args.solvers,
        "batch_sizes": args.batch_sizes,
        "devices": args.device,
        "dtypes": args.dtype,
        "tolerances": args.tolerance,
        "repeats": args.repeats,
        "warmups": args.warmups,
        "time_limit": args.time_limit,
    }
    if args.solvers:  # solvers named on the command line run wherever the suite's cases allow
        overrides["exclude_solvers"] = []
    suite = apply_overrides(suite, overrides)
    if args.threads is not None and args.threads < 0:
        raise ValueError(f"--threads must be >= 0, got {args.threads}")
    out = args.out or Path("results") / suite.name
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file, not a results directory")
    if args.check:  # the command line's executor settings are part of what --check vouches for
        from qpbench.runner.executors import check_settings, parse_executor

        check_settings(parse_executor(args.executor), args.in_process, args.workers)
        return print_plan(suite, args.threads)
    options = RunOptions(
        out_dir=out,
        fresh=args.fresh,
        in_process=args.in_process,
        quiet=args.quiet,
        threads=args.threads,
        executor=args.executor,
        workers=args.workers,
    )
    try:
        summary = run_suite(suite, options)
    except KeyboardInterrupt:
        print(
            f"\ninterrupted: finished rows are kept in {out}; run the same command to resume", file=sys.stderr
        )
        return 130
    outcomes = ", ".join(f"{k} {v}" for k, v in sorted(summary.outcomes.items())) or "none"
    print(
        f"suite {suite.name}: {summary.written} rows written ({outcomes}), "
        f"{summary.skipped} already there; results in {out}"
    )
    for message in summary.case_errors:
        print(f"case not run: {message}")
    print_summary(out, summary.time_limits)
    if args.no_report:
        return 0
    return write_report(out)


def print_summary(out: Path, limits: dict[str, float]) -> None:
    """Per solver and tolerance (per machine when several measured the rows: times are never pooled
    across machines); ``limits`` maps each case_id to its time limit (the run's cases)."""
    from qpbench.reports.machines import machine_groups
    from qpbench.results import load_table

    try:
        table = load_table(out)
    except FileNotFoundError:
        print("no results to summarize")
        return
    fallback = max(limits.values()) if limits else 10.0
    # rows record their time limit; rows written by an older qpbench take the run's cases' limits
    known = table["time_limit"].astype(float)
    table["time_limit"] = known.fillna(table["case_id"].map(limits)).fillna(fallback).astype(float)
    groups = machine_groups(table)
    for group in groups:
        heading = f"{group.label.capitalize()}: {group.fingerprint} ({len(group.rows)} rows)" if len(groups) > 1 else ""
        _print_solver_summary(group.rows, heading)


def _print_solver_summary(table: Any, heading: str) -> None:
    from qpbench import metrics

    summary = metrics.summary_table(table)
    if heading:
        print()
        print(heading)
    if summary.empty:
        print("no solver ran on any case (all rows unsupported or unavailable)")
        return
    shift = summary["shift"].dropna()
    print()
    print("Summary per solver and tolerance (time: failure-penalized shifted geometric mean of solve times")
    if not shift.empty:
        print(f"over every case some solver ran, shift {shift.iloc[0]:.3g} s; a case a solver did not run counts")
        print("as a failure; relative: 1.0 = fastest; *_run: over the cases that solver ran)")
    shown = summary.rename(columns={"geomean": "time_s", "relative": "relative_time"})
    print(
        shown[
            ["solver", "tolerance", "cases", "cases_run", "success_rate", "success_rate_run", "correct_rate", "time_s",
             "relative_time"]
        ].to_string(index=False, float_format=lambda v: f"{v:.4g}")
    )


def print_plan(suite: Suite, threads: int | None) -> int:
    """--check: the suite passed every check; say what a run would measure."""
    from qpbench.runner import plan_run

    plan = plan_run(suite)
    solvers = list(dict.fromkeys(ref.name for refs in plan.solvers.values() for ref in refs))
    pinned = suite.threads if threads is None else threads
    shown_threads = pinned or "torch's default"
    print(
        f"suite {suite.name} ({suite.path}) is valid: {len(plan.cases)} cases, {plan.units} rows "
        f"(case x solver x tolerance), torch threads {shown_threads}"
    )
    print(f"solvers: {', '.join(solvers) or 'none'}")
    return 0


def write_report(out: Path) -> int:
    try:
        from qpbench.reports import build_report
    except ImportError as exc:
        print(f"report step skipped: qpbench.reports is not importable ({exc})")
        return 0
    try:
        path = build_report(out)
    except Exception as exc:  # the results are safe on disk; say why the report is missing
        print(f"report step failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(f"report: {path}")
    return 0
