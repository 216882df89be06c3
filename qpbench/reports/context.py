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
    ) -> None:
        self.frame = frame
        self.environment = environment
        self.solvers = solvers
        self.reference = reference
        self.out = out
        self.style = style
        self.time_limit = summary.time_limit_from(environment)
        self._used: set[str] = set()

    def plot_path(self, label: str) -> Path:
        name = fmt.slug(label)
        candidate, i = name, 2
        while candidate in self._used:
            candidate, i = f"{name}-{i}", i + 1
        self._used.add(candidate)
        return self.out / PLOTS_DIR / f"{candidate}.png"
