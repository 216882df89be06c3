"""Compare the solver with a baseline: pass, regression, or inconclusive.

    qpbench compare BASELINE CURRENT         two results directories
    qpbench compare BASELINE                 run the suite now, compare with BASELINE (unpaired)
    qpbench compare BASELINE --paired        build the commit BASELINE was measured at and time both
                                             builds interleaved in this job (paired); unpaired when
                                             that build is impossible (no git, shallow clone, ...)
    qpbench compare --baseline-ref REF       paired against commit REF (BASELINE, if given, is the
                                             unpaired fallback)
    qpbench compare --record DIR             measure the suite into DIR the way a committed baseline
                                             is made (the judged solver interleaved with its
                                             reference solvers), and stop

Accuracy and robustness are compared directly; work counts (iterations, factorizations, solves,
data passes) exactly; speed with three verdicts against a promised detectable slowdown, printed
with every verdict (paired 1.25x for the suite, 1.5x for a single case; unpaired 1.5x and 2x).
Unpaired, the judged solver's time is a ratio to reference solvers timed in turn with it (where
both tables were measured that way, as --record and the unpaired check itself do), else to the
calibration kernel and the references' medians.

An inconclusive measurement (noise too large for the promise) is measured once more and judged
on both measurements together (--remeasure). Details: docs/regression.md.

Exit codes: 0 pass, 1 regression, 2 bad usage or input, 3 inconclusive.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from qpbench.paired.session import BuildCommand
    from qpbench.regression import CompareOptions, Comparison

NAME = "compare"
HELP = "compare with a baseline (CI regression gate): exit 0 pass, 1 regression, 3 inconclusive"
ORDER = 50

EXIT_PASS = 0
EXIT_REGRESSION = 1
EXIT_BAD_INPUT = 2
EXIT_INCONCLUSIVE = 3
OUT_PLACEHOLDER = "{out}"
OUT_VARIABLE = "QPBENCH_REMEASURE_OUT"  # the same directory, for callers (tox) where braces are taken
DEFAULT_SUITE = "ci"
# An unpaired measurement is this many interleaved sessions (processes): a session can carry a
# shift of its own, and only the spread between sessions shows it (docs/regression.md).
SESSIONS = 2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("baseline", type=Path, nargs="?", help="results directory of the baseline")
    parser.add_argument("current", type=Path, nargs="?", help="results directory to judge (default: measure now)")
    how = parser.add_argument_group("measuring now (without CURRENT)")
    how.add_argument(
        "--paired",
        action="store_true",
        help="build the commit BASELINE's environment.json records and time it interleaved with this "
        "environment's qpbench; unpaired against BASELINE where that build is impossible",
    )
    how.add_argument("--baseline-ref", metavar="REF", help="paired against this git commit (implies --paired)")
    how.add_argument("--suite", help="suite to measure (default: the one BASELINE recorded, else ci)")
    how.add_argument("--pairs", type=int, default=24, help="interleaved pairs per case (default: 24)")
    how.add_argument("--rounds", type=int, default=4, help="rounds through the cases the pairs are spread over (4)")
    how.add_argument(
        "--remeasure",
        type=int,
        default=1,
        help="measurements added when the verdict is inconclusive, judged together with the first (default: 1)",
    )
    how.add_argument(
        "--confirm",
        type=int,
        default=1,
        help="paired: a regression found by the clock alone is measured again this many times, each in fresh "
        "measurement servers, and stands only if each of them finds one too (default: 1)",
    )
    how.add_argument("--out", type=Path, help="keep the measured tables here (default: a temporary folder)")
    how.add_argument("--build-dir", type=Path, help="make and keep the baseline build here (reused per commit)")
    how.add_argument(
        "--record",
        type=Path,
        metavar="DIR",
        help="measure the suite (--suite, default ci) into DIR, interleaved, and stop: how the committed "
        "baseline is made (scripts/update_baseline.sh)",
    )
    parser.add_argument(
        "--remeasure-cmd",
        help="with CURRENT: shell command that writes a fresh run of the suite into {out} (also exported "
        "as $QPBENCH_REMEASURE_OUT), run when the verdict is inconclusive",
    )
    parser.add_argument("--solver", action="append", help="solver whose rows are judged (repeatable; default inhouse)")
    parser.add_argument(
        "--reference",
        action="append",
        help="unpaired speed reference: 'calibration' (the run's calibration kernel), a solver measured in "
        "the same run, or 'auto' (the kernel and every solver not judged) (repeatable; default auto)",
    )
    parser.add_argument("--promise", type=float, help="detectable slowdown of the suite (default: 1.25 paired, 1.5)")
    parser.add_argument("--case-promise", type=float, help="detectable slowdown of one case (default: 1.5 paired, 2)")
    parser.add_argument("--work-tolerance", type=float, default=0.0, help="allowed growth of a work count (0)")
    parser.add_argument("--no-speed", action="store_true", help="judge accuracy and work counts only")
    parser.add_argument(
        "--machine", metavar="FINGERPRINT",
        help="of a table with rows of several machines (a Dask run), compare this machine's rows only "
        "(a fingerprint or a part naming one; timings are never pooled across machines)",
    )
    parser.add_argument("--output", type=Path, help="also write the report (Markdown) to this file")
    parser.add_argument("--json", type=Path, help="also write the verdict and its figures as JSON")


def main(args: argparse.Namespace) -> int:
    from qpbench.paired.build import BuildUnavailableError
    from qpbench.paired.session import ServerError

    try:
        options = compare_options(args)
        if args.record is not None:
            return record(args)
        _check_usage(args)
        if args.current is not None:
            comparison, notes = judge_directories(args, options)
        elif args.paired or args.baseline_ref:
            comparison, notes = judge_paired(args, options)
        else:
            comparison, notes = judge_fresh_run(args, options)
    except ServerError as exc:
        print(f"qpbench compare: {exc}", file=sys.stderr)
        if exc.build == "candidate":  # the code under test cannot be measured: that is its failure
            return report_failure(str(exc), args)
        return EXIT_BAD_INPUT
    except (ValueError, FileNotFoundError, BuildUnavailableError, RuntimeError) as exc:
        print(f"qpbench compare: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    comparison.notes += notes
    return report(comparison, args)


def compare_options(args: argparse.Namespace) -> CompareOptions:
    from qpbench.regression import CompareOptions

    return CompareOptions(
        solvers=tuple(args.solver or ["inhouse"]),
        references=tuple(args.reference or ["auto"]),
        speed=not args.no_speed,
        promise_suite=args.promise,
        promise_case=args.case_promise,
        work_tolerance=args.work_tolerance,
        machine=args.machine,
    )


def _check_usage(args: argparse.Namespace) -> None:
    if args.baseline is None and not args.baseline_ref:
        raise ValueError("give a BASELINE results directory, or --baseline-ref REF")
    if args.baseline is not None and not args.baseline.is_dir():
        raise ValueError(f"baseline directory {args.baseline} does not exist")
    if args.current is not None:
        if not args.current.is_dir():
            raise ValueError(f"current directory {args.current} does not exist")
        if args.paired or args.baseline_ref:
            raise ValueError("--paired / --baseline-ref measure now: give no CURRENT directory")
    elif args.remeasure_cmd:
        raise ValueError("--remeasure-cmd re-measures a given CURRENT directory; without CURRENT, use --remeasure")
    for name in ("pairs", "rounds"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name} must be >= 1, got {getattr(args, name)}")
    for name in ("remeasure", "confirm"):
        if getattr(args, name) < 0:
            raise ValueError(f"--{name} must be >= 0, got {getattr(args, name)}")


# ----------------------------------------------------------------------------- the three modes


def judge_directories(args: argparse.Namespace, options: CompareOptions) -> tuple[Comparison, list[str]]:
    """BASELINE against CURRENT; an inconclusive verdict re-measured by --remeasure-cmd."""
    from qpbench.regression import Verdict, compare_tables
    from qpbench.results import load_table

    baseline, current = load_table(args.baseline), load_table(args.current)
    remeasure = remeasure_command(args.remeasure_cmd) if args.remeasure_cmd else None
    runs = [current]
    comparison = compare_tables(baseline, runs, options)
    notes = _environment_notes(args.baseline, args.current)
    if comparison.verdict is Verdict.INCONCLUSIVE and remeasure is not None:
        try:
            runs.append(remeasure())
        except RuntimeError as exc:
            notes.append(f"re-measurement failed ({exc}); the verdict stays inconclusive")
        else:
            comparison = compare_tables(baseline, runs, options)
            notes.append("inconclusive at first: re-measured once, judged on both runs")
    return comparison, notes


def judge_fresh_run(
    args: argparse.Namespace, options: CompareOptions, reason: str = ""
) -> tuple[Comparison, list[str]]:
    """Measure the suite now (once more per --remeasure while inconclusive), compare with BASELINE.

    A baseline of an interleaved session is matched by one (its judged solver timed in turn with
    the same reference solvers); a baseline of ``qpbench run`` by a ``qpbench run``.
    """
    from qpbench.regression import Verdict, compare_tables
    from qpbench.results import load_table

    baseline = load_table(args.baseline)
    suite = args.suite or recorded_suite(args.baseline)
    references = interleaved_references(baseline, options)
    notes = [f"unpaired: {reason}"] if reason else []
    with output_folder(args.out) as out:
        runs: list[pd.DataFrame] = []
        for attempt in range(args.remeasure + 1):
            for _ in range(SESSIONS if references else 1):
                folder = out / f"current-{len(runs) + 1}"
                if references:
                    measure_interleaved(suite, [*options.solvers, *references], folder, args.pairs, args.rounds,
                                        runs=recorded_runs(baseline))
                else:
                    run_suite_command(suite, folder)
                runs.append(load_table(folder))
            comparison = compare_tables(baseline, runs, options)
            if comparison.verdict is not Verdict.INCONCLUSIVE:
                break
            if attempt < args.remeasure:
                print("qpbench compare: inconclusive; measuring once more", file=sys.stderr)
        if attempt > 0:
            notes.append(f"inconclusive at first: measured {attempt + 1} times ({len(runs)} runs), judged together")
        notes += _environment_notes(args.baseline, out / f"current-{len(runs)}")
    return comparison, notes


def record(args: argparse.Namespace) -> int:
    """``--record DIR``: the suite's solvers, interleaved, into DIR (a baseline for later checks)."""
    from qpbench.paired.session import ServerError

    suite = args.suite or DEFAULT_SUITE
    try:
        measure_interleaved(suite, suite_solvers(suite), args.record, args.pairs, args.rounds)
    except (ServerError, ValueError, FileNotFoundError) as exc:
        print(f"qpbench compare: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(f"recorded suite {suite} into {args.record}")
    return EXIT_PASS


def measure_interleaved(
    suite: str,
    solvers: list[str],
    folder: Path,
    pairs: int,
    rounds: int,
    runs: dict[tuple[str, str], int] | None = None,
) -> None:
    """One interleaved session of this environment: ``solvers`` timed in turn, case by case (with
    ``runs`` solves per timed entry where given, e.g. a baseline's)."""
    from qpbench.paired.build import BuildUnavailableError, current_build, repository_root
    from qpbench.paired.session import InterleavedSession
    from qpbench.runner.suite import suite_path

    try:
        repo: Path | None = repository_root(Path.cwd())
    except BuildUnavailableError:
        repo = None
    build = current_build(repo)
    print(f"qpbench compare: measuring {', '.join(solvers)} interleaved on suite {suite}", file=sys.stderr)
    with InterleavedSession(suite_path(suite).resolve(), solvers, [build], runs=runs or {}) as session:
        session.measure(pairs, rounds)
        session.write({build.label: folder})


def recorded_runs(baseline: pd.DataFrame) -> dict[tuple[str, str], int]:
    """Solves per timed entry the baseline used, by (case_id, solver): consecutive solves of one
    batch are not equally fast, so a comparison times every solver as the baseline did."""
    found = {}
    for row in baseline.to_dict("records"):
        value = row.get("solves_per_time")
        if isinstance(value, (int, float)) and value == value and value >= 1:
            found[(str(row["case_id"]), str(row["solver"]))] = int(value)
    return found


def suite_solvers(suite: str) -> list[str]:
    """Every solver the suite's cases select, in order."""
    from qpbench.runner import expand, load_suite, select_solvers

    names: list[str] = []
    for case in expand(load_suite(suite)):
        names += [s for s in select_solvers(case.solvers, case.exclude_solvers) if s not in names]
    return names


def interleaved_references(baseline: pd.DataFrame, options: CompareOptions) -> list[str]:
    """The reference solvers the baseline timed in turn with its judged rows (none: not interleaved)."""
    from qpbench.regression.interleaved import is_interleaved, session_references
    from qpbench.regression.rows import latest_rows

    rows = latest_rows(baseline, "baseline", [])
    judged = set(options.solvers)
    keys = [k for k in rows if k[1] in judged]
    if not is_interleaved(keys, rows, judged):
        return []
    return sorted({name for key in keys for name in session_references(key, rows, judged)})


def judge_paired(args: argparse.Namespace, options: CompareOptions) -> tuple[Comparison, list[str]]:
    """A baseline build of REF and this environment, timed interleaved; unpaired if REF can't be built."""
    from qpbench.paired.build import (
        BuildUnavailableError,
        current_build,
        prepare_baseline,
        recorded_commit,
        repository_root,
    )
    from qpbench.paired.session import ServerError
    from qpbench.runner.suite import suite_path

    suite = suite_path(args.suite or (recorded_suite(args.baseline) if args.baseline else DEFAULT_SUITE)).resolve()
    with output_folder(args.out) as out, output_folder(args.build_dir) as builds:
        try:
            repo = repository_root(Path.cwd())
            ref = args.baseline_ref or recorded_commit(args.baseline)
            baseline_build = prepare_baseline(repo, ref, builds)
        except BuildUnavailableError as exc:
            return _fall_back(args, options, f"no paired build ({exc})")
        candidate = current_build(repo)
        notes = [f"paired: baseline build {baseline_build.commit} (REF {ref}) against this environment's qpbench "
                 f"({_describe_commit(candidate.commit, candidate.dirty)}), interleaved in one job"]
        both = [baseline_build, candidate]
        try:
            folders = {"baseline": out / "baseline", "candidate": out / "candidate"}
            comparison = measure_paired(args, options, suite, both, folders, notes)
            for attempt in range(1, args.confirm + 1):
                if not comparison.regressed_by_the_clock_alone:
                    break
                print("qpbench compare: a slowdown seen by the clock alone; measuring again in fresh processes",
                      file=sys.stderr)
                first = comparison
                folders = {side: out / f"confirmation-{attempt}" / side for side in ("baseline", "candidate")}
                comparison = measure_paired(args, options, suite, both, folders, notes)
                notes.append(confirmation_note(first, comparison, attempt))
        except ServerError as exc:
            if exc.build != "baseline":
                raise
            return _fall_back(args, options, f"the baseline build could not be measured ({exc})")
        notes += _environment_notes(folders["baseline"], folders["candidate"])
    return comparison, notes


def measure_paired(
    args: argparse.Namespace,
    options: CompareOptions,
    suite: Path,
    builds: list[BuildCommand],
    folders: dict[str, Path],
    notes: list[str],
) -> Comparison:
    """One paired session (a fresh measurement server per build), measured once more per --remeasure
    while inconclusive, its tables written to ``folders`` and judged."""
    from qpbench.paired.session import InterleavedSession
    from qpbench.regression import Verdict, compare_tables
    from qpbench.results import load_table

    with InterleavedSession(suite, list(options.solvers), builds) as session:
        for attempt in range(args.remeasure + 1):
            session.measure(args.pairs, args.rounds)
            session.write(folders)
            comparison = compare_tables(load_table(folders["baseline"]), load_table(folders["candidate"]), options)
            if comparison.verdict is not Verdict.INCONCLUSIVE:
                break
            if attempt < args.remeasure:
                print("qpbench compare: inconclusive; measuring more pairs", file=sys.stderr)
    if session.pairs > args.pairs:
        notes.append(f"inconclusive at first: measured {session.pairs} pairs per case in all, judged together")
    return comparison


def confirmation_note(first: Comparison, again: Comparison, attempt: int) -> str:
    found = ", ".join(f"{f.case} {f.current:.3f}x" for f in first.regressions)
    return (f"confirmation {attempt}: the session before found slowdowns by the clock alone ({found}); fresh "
            f"measurement servers measured again, and their verdict ({again.verdict}) is the one reported")


def _fall_back(args: argparse.Namespace, options: CompareOptions, why: str) -> tuple[Comparison, list[str]]:
    if args.baseline is None:
        raise ValueError(f"{why}, and no BASELINE directory to compare with instead")
    print(f"qpbench compare: {why}; comparing unpaired with {args.baseline}", file=sys.stderr)
    return judge_fresh_run(args, options, reason=f"{why}; compared with the committed table {args.baseline}")


# ----------------------------------------------------------------------------- helpers


def recorded_suite(baseline: Path) -> str:
    """The suite name BASELINE's environment.json records (``ci`` when it records none)."""
    from qpbench.results import load_environment

    suite = load_environment(baseline).get("suite") or {}
    return str(suite.get("name") or DEFAULT_SUITE) if isinstance(suite, dict) else DEFAULT_SUITE


def run_suite_command(suite: str, out: Path) -> None:
    """``qpbench run SUITE`` of this environment into ``out``, as a separate process."""
    command = [sys.executable, "-m", "qpbench", "run", suite, "--out", str(out), "--fresh", "--no-report", "--quiet"]
    print(f"qpbench compare: measuring: {shlex.join(command)}", file=sys.stderr)
    done = subprocess.run(command, stdout=subprocess.DEVNULL, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"the suite run exited with status {done.returncode}: {shlex.join(command)}")


def remeasure_command(command: str) -> Any:
    """A re-measurement that runs ``command`` into a fresh directory and loads what it wrote."""
    if OUT_PLACEHOLDER not in command and OUT_VARIABLE not in command:
        raise ValueError(
            f"--remeasure-cmd must contain {OUT_PLACEHOLDER} or ${OUT_VARIABLE}, the directory the run writes to"
        )

    def remeasure() -> pd.DataFrame:
        from qpbench.results import load_table

        out = Path(tempfile.mkdtemp(prefix="qpbench-remeasure-"))
        line = command.replace(OUT_PLACEHOLDER, shlex.quote(str(out)))
        print(f"qpbench compare: inconclusive; re-measuring with: {line}", file=sys.stderr)
        done = subprocess.run(line, shell=True, env={**os.environ, OUT_VARIABLE: str(out)}, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"re-measurement command exited with status {done.returncode}")
        try:
            return load_table(out)
        except FileNotFoundError as exc:
            raise RuntimeError(str(exc)) from None

    return remeasure


@contextmanager
def output_folder(path: Path | None) -> Iterator[Path]:
    """``path`` (created, kept), or a temporary folder removed afterwards."""
    if path is not None:
        path.mkdir(parents=True, exist_ok=True)
        yield path
        return
    folder = Path(tempfile.mkdtemp(prefix="qpbench-compare-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _environment_notes(baseline: Path, current: Path) -> list[str]:
    from qpbench.regression import environment_notes
    from qpbench.results import load_environment

    return environment_notes(load_environment(baseline), load_environment(current))


def _describe_commit(commit: str | None, dirty: bool | None) -> str:
    if not commit:
        return "not a git checkout"
    return f"{commit[:12]}" + (" with uncommitted changes" if dirty else "")


def report_failure(error: str, args: argparse.Namespace) -> int:
    """The verdict when the candidate build itself could not be measured: a regression."""
    text = f"VERDICT: REGRESSION (the candidate build failed to measure the suite)\n- {error}\n"
    print(text, end="")
    _write_outputs(args, text, {"verdict": "regression", "mode": "", "error": error, "regressions": [
        {"case": "", "metric": "candidate", "message": error}], "notes": []})
    return EXIT_REGRESSION


def _write_outputs(args: argparse.Namespace, text: str, verdict: dict[str, Any]) -> None:
    if args.output is not None:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text, encoding="utf-8")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(verdict, indent=2, default=str) + "\n", encoding="utf-8")


def report(comparison: Comparison, args: argparse.Namespace) -> int:
    from qpbench.regression import Verdict

    text = comparison.render()
    print(text, end="")
    _write_outputs(args, text, comparison.to_dict())
    return {Verdict.PASS: EXIT_PASS, Verdict.REGRESSION: EXIT_REGRESSION}.get(comparison.verdict, EXIT_INCONCLUSIVE)
