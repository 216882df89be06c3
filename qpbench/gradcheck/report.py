"""The result of a gradient check: error table, flagged problems, cross-solver comparison."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from qpbench.problem import NAMES

TABLE_COLUMNS = [
    "solver", "parameter", "layout", "compared", "max_abs_err", "max_rel_err", "worst_problem", "forward_err",
    "passed",
]
FLAGGED_COLUMNS = ["problem", "reason", "detail"]
CROSS_COLUMNS = ["solver_a", "solver_b", "parameter", "max_abs_diff", "max_rel_diff"]


@dataclass
class GradCheckReport:
    """``table``: one row per (solver, parameter) with the largest absolute and relative error of
    the analytic gradient against finite differences over the problems not flagged.
    ``flagged``: problems left out because the solution map is not differentiable there (or not
    within the step). ``cross``: pairwise differences between solvers' gradients, all expressed
    in the sum convention. ``skipped``: solver -> why it was not run (unsupported input).
    ``failed``: solver -> the error its differentiable solve or backward pass raised.
    ``warnings``: solver -> the warnings it issued (e.g. problems left unsolved, zero gradients).
    """

    table: pd.DataFrame
    flagged: pd.DataFrame
    cross: pd.DataFrame
    threshold: float
    meta: dict[str, Any] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    warnings: dict[str, list[str]] = field(default_factory=dict)

    @property
    def solvers(self) -> list[str]:
        return list(dict.fromkeys([*self.table["solver"], *self.failed]))

    @property
    def problems_compared(self) -> int:
        return int(self.meta.get("problems_compared", 0))

    def worst(self, solver: str) -> pd.Series:
        """The row with the largest relative error for ``solver``."""
        rows = self.table[self.table["solver"] == solver]
        if rows.empty:
            known = ", ".join(sorted(set(self.table["solver"]))) or "none"
            raise ValueError(f"solver {solver!r} has no rows in this report (solvers: {known})")
        compared = rows[rows["compared"].gt(0)]
        if compared.empty:
            return rows.iloc[0]
        return compared.loc[compared["max_rel_err"].astype(float).fillna(math.inf).idxmax()]

    def failing_solvers(self) -> list[str]:
        """Solvers whose error exceeds the threshold (NaN counts as exceeding) or that raised."""
        bad = self.table[self.table["compared"].gt(0) & ~self.table["passed"].astype(bool)]
        return list(dict.fromkeys([*bad["solver"], *self.failed]))

    def passed(self) -> bool:
        """True when every solver run is within the threshold and at least one problem was compared."""
        return self.problems_compared > 0 and not self.failing_solvers()

    def to_dict(self) -> dict[str, Any]:
        def records(df: pd.DataFrame) -> list[dict[str, Any]]:
            return [{k: _plain(v) for k, v in row.items()} for row in df.to_dict(orient="records")]

        return {
            "meta": {k: _plain(v) for k, v in self.meta.items()},
            "threshold": self.threshold,
            "passed": self.passed(),
            "failing_solvers": self.failing_solvers(),
            "table": records(self.table),
            "flagged": records(self.flagged),
            "cross": records(self.cross),
            "skipped": self.skipped,
            "failed": self.failed,
            "warnings": self.warnings,
        }

    def format(self) -> str:
        """Plain-text report for the terminal."""
        meta = self.meta
        lines = [
            f"Gradient check: {meta.get('family', 'batch')} n={meta.get('n')} m={meta.get('m')} "
            f"k={meta.get('k')} B={meta.get('batch_size')} {meta.get('dtype')} mode={meta.get('mode')} "
            f"step={meta.get('step')} seed={meta.get('seed')}",
            "Loss: sum over problems of c_b' z_b with seeded random c. Finite differences: central, "
            f"float64, exact active-set solves (active set from {meta.get('reference', 'the reference')}).",
            "Relative error: max |analytic - FD| / (largest |FD| of that problem). "
            f"Threshold {self.threshold:g}. forward_err: max |z - z_exact| / max(1, |z_exact|).",
            f"Shared tensors: {meta.get('convention_note', '')}",
            f"Problems compared: {self.problems_compared} of {meta.get('batch_size')} "
            f"({len(self.flagged)} flagged as non-differentiable within the step, see below)",
            "",
        ]
        if not self.table.empty:
            shown = self.table.copy()
            for col in ("max_abs_err", "max_rel_err", "forward_err"):
                shown[col] = shown[col].map(lambda v: f"{v:.2e}")
            shown["passed"] = shown["passed"].map(lambda v: "ok" if v else "FAIL")
            lines += ["Errors against finite differences:", shown.to_string(index=False), ""]
        for solver, reason in self.skipped.items():
            lines.append(f"skipped {solver}: {reason}")
        for solver, error in self.failed.items():
            lines.append(f"FAILED {solver}: {error}")
        for solver, messages in self.warnings.items():
            lines += [f"warning from {solver}: {message}" for message in messages]
        if self.skipped or self.failed or self.warnings:
            lines.append("")
        if not self.flagged.empty:
            lines += ["Flagged problems (not counted as errors):", self.flagged.to_string(index=False), ""]
        if not self.cross.empty:
            wide = self.cross.pivot(index=["solver_a", "solver_b"], columns="parameter", values="max_rel_diff")
            wide = wide[[c for c in NAMES if c in wide.columns]]
            lines += ["Solvers against each other: max relative difference of the gradients "
                      "(sum convention, Q symmetrized):", wide.map(lambda v: f"{v:.2e}").to_string(), ""]
        if self.problems_compared == 0:
            lines.append("RESULT: nothing compared (every problem flagged or no solver ran)")
        elif self.failing_solvers():
            lines.append(f"RESULT: FAIL ({', '.join(self.failing_solvers())})")
        else:
            lines.append("RESULT: ok")
        return "\n".join(lines)


def _plain(value: Any) -> Any:
    """JSON-friendly scalar (numpy types to Python, NaN to None)."""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
