"""What the report's sections share (see :mod:`qpbench.reports.build`)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from qpbench.reports import formatting as fmt
from qpbench.reports import plots, summary

PLOTS_DIR = "plots"


class ReportContext:
    """What every section needs: the typed table, the environment record, the solvers in table order,
    the speed-up reference, the output directory and plot style; plot file names are made unique here."""

    def __init__(
        self,
        frame: pd.DataFrame,
        environment: Mapping[str, Any],
        solvers: list[str],
        reference: str | None,
        out: Path,
        style: plots.SolverStyle,
        plot_prefix: str = "",
        used: set[str] | None = None,
    ) -> None:
        self.frame = frame
        self.environment = environment
        self.solvers = solvers
        self.reference = reference
        self.out = out
        self.style = style
        self.time_limit = summary.time_limit_from(environment)
        self.plot_prefix = plot_prefix
        self._used: set[str] = set() if used is None else used

    def for_rows(self, frame: pd.DataFrame, plot_prefix: str) -> ReportContext:
        """The same report restricted to ``frame`` (one machine's rows): its solvers in the table's
        order, the same reference where it ran there, the same plot style, unique plot names."""
        present = set(frame["solver"])
        solvers = [s for s in self.solvers if s in present]
        reference = self.reference if self.reference in present else (solvers[0] if solvers else None)
        return ReportContext(frame, self.environment, solvers, reference, self.out, self.style, plot_prefix, self._used)

    def plot_path(self, label: str) -> Path:
        name = fmt.slug(f"{self.plot_prefix}-{label}" if self.plot_prefix else label)
        candidate, i = name, 2
        while candidate in self._used:
            candidate, i = f"{name}-{i}", i + 1
        self._used.add(candidate)
        return self.out / PLOTS_DIR / f"{candidate}.png"
