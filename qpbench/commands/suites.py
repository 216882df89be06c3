"""List the benchmark suites in problems/ with a one-line description each.

Run one with `qpbench run NAME`; the file format is described in docs/suite-format.md.
"""

from __future__ import annotations

import argparse

NAME = "suites"
HELP = "list the benchmark suites (problems/*.toml)"
ORDER = 30


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--paths", action="store_true", help="also print each suite file's path")


def main(args: argparse.Namespace) -> int:
    from qpbench.runner.suite import load_suite, suite_names, suites_dir

    names = suite_names()
    if not names:
        print(f"no suites found in {suites_dir()}")  # the folder looked in, $QPBENCH_SUITES_DIR's included
        return 1
    width = max(len(name) for name in names)
    status = 0
    for name in names:
        try:
            suite = load_suite(name)
        except ValueError as exc:  # show every suite, and say which file is broken
            print(f"{name:<{width}}  INVALID: {exc}")
            status = 2
            continue
        line = suite.description.strip().splitlines()[0] if suite.description.strip() else "(no description)"
        print(f"{name:<{width}}  {line}" + (f"  [{suite.path}]" if args.paths else ""))
    return status
