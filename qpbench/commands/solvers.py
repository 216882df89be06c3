"""List every solver adapter: whether it is available here (and why not), its version and what
it can take. Per-problem solvers also run on worker processes as ``<name>@<workers>``
(e.g. ``quadprog@4``) in suites and ``qpbench run``.

``--markdown`` prints the adapter tables of docs/solvers.md (capabilities, options per tolerance
level, why each mapping) from the code alone, the same on every machine; ``--markdown FILE``
rewrites the generated part of FILE in place, between the two marker lines.

Exit codes: 0 listed; 1 with --require N when fewer than N adapters are available.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
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


BEGIN_MARKER = "<!-- begin generated: qpbench solvers --markdown docs/solvers.md (edit the adapters, not this part) -->"
END_MARKER = "<!-- end generated -->"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print a JSON list instead of a table")
    parser.add_argument(
        "--markdown",
        nargs="?",
        const="-",
        default=None,
        metavar="FILE",
        help="print the adapter tables of docs/solvers.md, generated from the code; with FILE, rewrite "
        "the generated part of FILE (between its marker lines) instead",
    )
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

    if args.markdown is not None:
        return _write_markdown(args.markdown)
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


def _write_markdown(target: str) -> int:
    from qpbench.adapters.docs import adapter_tables
    from qpbench.adapters.registry import all_adapters

    text = adapter_tables(all_adapters())
    if target == "-":
        print(text, end="")
        return 0
    path = Path(target)
    path.write_text(replace_generated(path.read_text(encoding="utf-8"), text, str(path)), encoding="utf-8")
    print(f"wrote the generated part of {path}")
    return 0


def replace_generated(document: str, generated: str, where: str = "the document") -> str:
    """``document`` with the text between its marker lines replaced by ``generated``."""
    start, end = document.find(BEGIN_MARKER), document.find(END_MARKER)
    if start < 0 or end < start:
        raise ValueError(f"{where}: needs the marker lines {BEGIN_MARKER!r} and then {END_MARKER!r}")
    head = document[: start + len(BEGIN_MARKER)]
    return f"{head}\n\n{generated.strip()}\n\n{document[end:]}"


def generated_part(document: str) -> str:
    """The text between the marker lines (stripped), or "" when they are missing."""
    start, end = document.find(BEGIN_MARKER), document.find(END_MARKER)
    return document[start + len(BEGIN_MARKER) : end].strip() if 0 <= start < end else ""
