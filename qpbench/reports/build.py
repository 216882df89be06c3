"""Assemble the report: results table + environment record -> report.md, report.html, plots/*.png.

Reads only :func:`qpbench.results.load_table` and :func:`qpbench.results.load_environment`; never
imports a solver (docs/architecture.md, "One way through").
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from qpbench.reports import answer, batches, diagnostics, overview, plots, summary
from qpbench.reports.context import PLOTS_DIR, ReportContext
from qpbench.reports.document import Block, Contents, Heading, Paragraph, to_html, to_markdown
from qpbench.reports.machines import machine_groups, machines_section, tagged
from qpbench.results import load_environment, load_run_records, load_table

REPORT_MD = "report.md"
REPORT_HTML = "report.html"
DEFAULT_REFERENCE = "inhouse"


def build_report(results_dir: Path | str, out_dir: Path | str | None = None, reference: str | None = None) -> Path:
    """Write report.md, report.html and plots/ for a results directory; return report.md's path.

    ``reference`` is the solver speed-ups are measured against (default: "inhouse" when it is in
    the table, else the first solver in the table).
    """
    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        raise FileNotFoundError(f"results_dir {results_dir} is not a directory")
    frame = summary.prepare(load_table(results_dir))
    environment = load_environment(results_dir)
    out = Path(out_dir) if out_dir is not None else results_dir / "report"
    plot_dir = out / PLOTS_DIR
    plot_dir.mkdir(parents=True, exist_ok=True)
    for stale in plot_dir.glob("*.png"):  # never link a plot left over from an older report
        stale.unlink()

    solvers = summary.ordered_solvers(frame)
    reference = _choose_reference(solvers, reference)
    context = ReportContext(frame, environment, solvers, reference, out, plots.SolverStyle(tuple(solvers)))
    title = f"qpbench report: {', '.join(_suite_names(frame, environment)) or 'no suite'}"

    # The answer first (fastest per problem size and batch size, who failed and why), then the
    # contents; the definitions, what was run and the machine at the end. Rows of several machines
    # (a Dask cluster) get the same sections once per machine: timings are never pooled.
    groups = machine_groups(frame)
    blocks: list[Block] = [Heading(1, title), *overview.intro(context, groups)]
    if frame.empty:
        blocks.append(Paragraph("The results table has no rows: nothing was measured."))
        blocks += [Heading(2, "Contents"), Contents()]
    elif len(groups) == 1:
        blocks += answer.answer_section(context)
        blocks += [Heading(2, "Contents"), Contents()]
        blocks += _sections(context)
    else:
        blocks += machines_section(groups, load_run_records(results_dir))
        blocks += [Heading(2, "Contents"), Contents()]
        for group in groups:
            mine = context.for_rows(group.rows, f"m{group.number}")
            blocks.append(Heading(2, f"{group.label.capitalize()}: {group.fingerprint}"))
            blocks += tagged(answer.answer_section(mine) + _sections(mine), group)
    blocks += overview.definitions_section()
    blocks += overview.contents_section(context)
    blocks += overview.environment_section(context)

    report = out / REPORT_MD
    report.write_text(to_markdown(blocks, out), encoding="utf-8")
    (out / REPORT_HTML).write_text(to_html(blocks, title), encoding="utf-8")
    return report


def _sections(context: ReportContext) -> list[Block]:
    """Everything after the answer that compares solvers: summaries, batch and test-set tables,
    gradients, failures."""
    return [
        *overview.summary_sections(context),
        *batches.batch_sections(context),
        *batches.test_set_sections(context),
        *diagnostics.gradient_section(context),
        *diagnostics.failure_section(context),
    ]


def _choose_reference(solvers: list[str], reference: str | None) -> str | None:
    if reference is not None:
        if reference not in solvers:
            known = ", ".join(solvers) or "none"
            raise ValueError(f"reference solver {reference!r} is not in the results table (solvers: {known})")
        return reference
    if DEFAULT_REFERENCE in solvers:
        return DEFAULT_REFERENCE
    return solvers[0] if solvers else None


def _suite_names(frame: pd.DataFrame, environment: Mapping[str, Any]) -> list[str]:
    names = list(dict.fromkeys(frame["suite"]))
    if not names:
        suite = environment.get("suite")
        if isinstance(suite, Mapping):
            suite = suite.get("name")
        if suite:
            names = [str(suite)]
    return names
