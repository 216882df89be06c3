"""Write a timing report for a results directory: report.md with PNG plots, and report.html
(self-contained: plots embedded, no external assets).

The report reads only RESULTS_DIR/results.jsonl and RESULTS_DIR/environment.json.
"""

from __future__ import annotations

import argparse
from pathlib import Path

NAME = "report"
HELP = "write a Markdown + HTML timing report (with plots) from a results directory"
ORDER = 40


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("results_dir", metavar="RESULTS_DIR", type=Path, help="directory holding results.jsonl")
    parser.add_argument("-o", "--out", type=Path, default=None, help="output directory (default: RESULTS_DIR/report)")
    parser.add_argument(
        "--reference",
        default=None,
        metavar="SOLVER",
        help='solver that speed-ups are measured against (default: "inhouse" if present, else the first)',
    )


def main(args: argparse.Namespace) -> int:
    from qpbench.reports import build_report
    from qpbench.reports.build import REPORT_HTML

    report = build_report(args.results_dir, args.out, reference=args.reference)
    print(f"wrote {report}")
    print(f"wrote {report.parent / REPORT_HTML}")
    return 0
