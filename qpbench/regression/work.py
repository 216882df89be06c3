"""Work counts beside the clock: iterations, factorizations, solves and data passes per solve.

The in-house solver counts them itself (``work_*`` columns). They do not depend on machine load
and are deterministic for fixed problems, library versions and CPU, so they are compared exactly
(``work_tolerance``, default 0): more work is a regression that no noise can hide. Less work is
not a failure, but it means the solver changed, so a note asks for the baseline to be regenerated
(the deliberate act that also accepts an intended rise; ``docs/regression.md``).
"""

from __future__ import annotations

import math

from qpbench.regression.rows import Finding, Row, num

WORK_COLUMNS = ("work_iterations", "work_factorizations", "work_solves", "work_products")


def work_findings(case: str, base: Row, cur: Row, tolerance: float) -> tuple[list[Finding], list[str]]:
    """(findings, notes) for the counts recorded in both rows; rows not ok on both sides are skipped."""
    if str(base.get("outcome")) != "ok" or str(cur.get("outcome")) != "ok":
        return [], []
    found: list[Finding] = []
    fewer: list[str] = []
    for column in WORK_COLUMNS:
        b, c = num(base, column), num(cur, column)
        if math.isnan(b) or math.isnan(c):
            continue
        if c > b * (1 + tolerance):
            growth = f" ({c / b - 1:+.1%})" if b > 0 else ""
            message = f"{_name(column)} grew {int(b)} -> {int(c)}{growth}; {_allowed(tolerance)}"
            found.append(Finding(case, column, int(b), int(c), message))
        elif c < b:
            fewer.append(f"{_name(column)} {int(b)} -> {int(c)}")
    notes = [f"{case}: less work ({', '.join(fewer)}): the solver changed; regenerate the baseline "
             "to keep the gate's reference current"] if fewer else []
    return found, notes


def has_work(row: Row) -> bool:
    return any(not math.isnan(num(row, column)) for column in WORK_COLUMNS)


def _name(column: str) -> str:
    return column.removeprefix("work_")


def _allowed(tolerance: float) -> str:
    return f"allowed {tolerance:+.1%}" if tolerance else "counts must not grow"
