"""List every solver adapter: whether it is available here (and why not), its version and what
it can take. Per-problem solvers also run on worker processes as ``<name>@<workers>``
(e.g. ``quadprog@4``) in suites and ``qpbench run``.

Exit codes: 0 listed; 1 with --require N when fewer than N adapters are available.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

NAME = "solvers"
HELP = "list solver adapters: availability, version, capabilities"
ORDER = 20

COLUMNS = (
    ("name", "name"),
    ("available", "available"),
    ("version", "version"),
    ("batched", "batched"),
    ("differentiable", "differentiable"),
    ("devices", "devices"),
    ("dtypes", "dtypes"),
    ("needs_pd_q", "needs PD Q"),
    ("equalities", "equalities"),
    ("lp", "LP"),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print a JSON list instead of a table")
    parser.add_argument("--available", action="store_true", help="list only the available adapters")
    parser.add_argument(
        "--require",
        type=int,
        default=None,
        metavar="N",
        help="exit 1 when fewer than N adapters are available (a CI check of the environment)",
    )


def _cell(key: str, row: dict[str, Any]) -> str:
    value = row[key]
    if key == "available":
        return "yes" if value else f"no: {row['reason']}"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def format_table(rows: list[dict[str, Any]]) -> str:
    """A plain-text table with one line per adapter."""
    header = [title for _, title in COLUMNS]
    body = [[_cell(key, row) for key, _ in COLUMNS] for row in rows]
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "  ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True)).rstrip()

    return "\n".join([line(header), line(["-" * w for w in widths]), *(line(cells) for cells in body)])


def main(args: argparse.Namespace) -> int:
    from qpbench.adapters.registry import all_adapters

    if args.require is not None and args.require < 0:
        raise ValueError(f"--require must be >= 0, got {args.require}")
    rows = [adapter.describe() for adapter in all_adapters()]
    if args.available:
        rows = [row for row in rows if row["available"]]
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print(format_table(rows))
    count = sum(1 for row in rows if row["available"])
    if args.require is not None and count < args.require:
        print(f"qpbench solvers: only {count} adapters available, {args.require} required", file=sys.stderr)
        return 1
    return 0
