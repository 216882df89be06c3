"""Compare two results directories and say whether the solver regressed.

Accuracy and robustness (success rate, residuals, objective and gradient errors, iterations,
status counts, outcome) are compared directly. Speed is compared as the ratio of the solver's
solve time to references measured in the same run (by default the calibration kernel and every
other solver in the tables), against a margin derived from the spread of the repeats and the
consistency of the references; a noise-weighted geometric mean over cases catches uniform
slowdowns. With --confirm-cmd, a speed regression or a new timeout is re-checked on a fresh run
and fails only if it persists. Details: problems/regression.md.

Exit codes: 0 no regression, 1 regression, 2 bad input (missing directory, no common cases).
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

NAME = "compare"
HELP = "compare two results directories (CI regression check); exit 1 on a regression"
ORDER = 50

EXIT_OK = 0
EXIT_REGRESSION = 1
EXIT_BAD_INPUT = 2
OUT_PLACEHOLDER = "{out}"
OUT_VARIABLE = "QPBENCH_CONFIRM_OUT"  # the same directory, for callers (tox) where braces are taken


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("baseline", type=Path, help="results directory of the baseline (holds results.jsonl)")
    parser.add_argument("current", type=Path, help="results directory to judge")
    parser.add_argument(
        "--solver",
        action="append",
        default=None,
        help="solver whose rows are judged (repeatable; default: inhouse)",
    )
    parser.add_argument(
        "--reference",
        action="append",
        default=None,
        help="speed reference: 'calibration' (the run's calibration kernel, imitated interior-point "
        "iterations), a solver name measured in the same run, or 'auto' (the calibration kernel and every "
        "solver not judged) (repeatable; default: auto)",
    )
    parser.add_argument(
        "--speed-threshold",
        default="auto",
        help="per-case slowdown margin: 'auto' (from the repeats' spread, at least 25%%) or a "
        "fraction such as 0.3 (default: auto)",
    )
    parser.add_argument(
        "--aggregate-threshold",
        type=float,
        default=0.15,
        help="geometric-mean slowdown over all cases that fails (default: 0.15)",
    )
    parser.add_argument("--no-speed", action="store_true", help="judge accuracy and robustness only")
    parser.add_argument(
        "--confirm-cmd",
        default=None,
        help="shell command that re-runs the suite into the directory {out} (substituted; also "
        "exported as $QPBENCH_CONFIRM_OUT); run only when a speed regression or a new timeout is "
        "found, which then fails only if the re-run shows it too",
    )
    parser.add_argument("--output", type=Path, default=None, help="also write the report to this file")


def parse_speed_threshold(text: str) -> float | str:
    if text == "auto":
        return "auto"
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"--speed-threshold must be 'auto' or a number > 0, got {text!r}") from None
    if not value > 0:
        raise ValueError(f"--speed-threshold must be 'auto' or a number > 0, got {text!r}")
    return value


def shell_confirmation(command: str) -> Callable[[], pd.DataFrame]:
    """A confirm hook that runs ``command`` into a fresh directory and loads what it wrote."""
    if OUT_PLACEHOLDER not in command and OUT_VARIABLE not in command:
        raise ValueError(
            f"--confirm-cmd must contain {OUT_PLACEHOLDER} or ${OUT_VARIABLE}, the directory the re-run writes to"
        )

    def confirm() -> pd.DataFrame:
        from qpbench.results import load_table

        out = Path(tempfile.mkdtemp(prefix="qpbench-confirm-"))
        line = command.replace(OUT_PLACEHOLDER, shlex.quote(str(out)))
        print(f"qpbench compare: speed/timeout finding; confirming with: {line}", file=sys.stderr)
        env = {**os.environ, OUT_VARIABLE: str(out)}
        done = subprocess.run(line, shell=True, env=env, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"confirmation command exited with status {done.returncode}")
        return load_table(out)

    return confirm


def main(args: argparse.Namespace) -> int:
    from qpbench.regression import CompareOptions, compare_tables, environment_notes
    from qpbench.results import load_environment, load_table

    for label, path in (("baseline", args.baseline), ("current", args.current)):
        if not Path(path).is_dir():
            print(f"qpbench compare: error: {label} directory {path} does not exist", file=sys.stderr)
            return EXIT_BAD_INPUT
    try:
        options = CompareOptions(
            solvers=tuple(args.solver or ["inhouse"]),
            references=tuple(args.reference or ["auto"]),
            speed=not args.no_speed,
            speed_threshold=parse_speed_threshold(args.speed_threshold),
            aggregate_threshold=args.aggregate_threshold,
            confirm=shell_confirmation(args.confirm_cmd) if args.confirm_cmd else None,
        )
        baseline = load_table(args.baseline)
        current = load_table(args.current)
        comparison = compare_tables(baseline, current, options)
    except (ValueError, FileNotFoundError) as exc:
        print(f"qpbench compare: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    comparison.notes += environment_notes(load_environment(args.baseline), load_environment(args.current))
    report = comparison.render()
    print(report, end="")
    if args.output is not None:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(report, encoding="utf-8")
    return EXIT_OK if comparison.ok else EXIT_REGRESSION
