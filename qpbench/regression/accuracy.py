"""Accuracy and robustness: machine-independent numbers, compared as they are."""

from __future__ import annotations

import math

from qpbench.regression.options import CompareOptions
from qpbench.regression.rows import Finding, Row, num
from qpbench.status import Status

# the runner's per-status count columns (qpbench.runner.measure), less solved
FAILURE_COUNTS = tuple(f"n_{s.label}" for s in Status if s not in (Status.SOLVED, Status.RUNNING))
RESIDUALS = ("primal_res_max", "dual_res_max", "gap_max")


def accuracy_findings(case: str, base: Row, cur: Row, options: CompareOptions) -> list[Finding]:
    found: list[Finding] = []

    def add(metric: str, b: object, c: object, message: str) -> None:
        found.append(Finding(case, metric, b, c, message))

    b_out, c_out = str(base.get("outcome") or ""), str(cur.get("outcome") or "")
    if b_out == "ok" and c_out != "ok":
        error = str(cur.get("error") or "").strip()
        add("outcome", b_out, c_out, f"outcome ok -> {c_out}" + (f": {error}" if error else ""))
        return found  # nothing else of the current row is meaningful
    if c_out != "ok" or b_out != "ok":
        return found  # was already not ok: no worse than before

    for metric in ("success_rate", "correct_rate"):
        b, c = num(base, metric), num(cur, metric)
        if _got_worse_down(b, c, options.success_drop):
            add(metric, b, c, f"{metric.replace('_', ' ')} dropped {b:.3f} -> {c:.3f}")

    status = _status_change(base, cur)
    if status is not None:
        add("status", *status)

    eps = num(cur, "tolerance_eps")
    if math.isnan(eps):
        eps = num(base, "tolerance_eps")
    for metric in RESIDUALS:
        message = _error_growth(num(base, metric), num(cur, metric), eps, options.residual_growth)
        if message:
            add(metric, num(base, metric), num(cur, metric), f"{metric} {message} (eps {eps:.0e})")
    # Objective error is relative, so the tolerance level is the right scale for it too;
    # gradient errors are judged against their own tolerance (finite differences are coarser).
    for metric, tol, what in (
        ("obj_rel_err_max", eps, "objective error"),
        ("grad_err_max", options.gradient_tolerance, "gradient error"),
    ):
        b, c = num(base, metric), num(cur, metric)
        message = _error_growth(b, c, tol, options.residual_growth)
        if message:
            add(metric, b, c, f"{what} {message}")

    for metric in ("iterations_mean", "iterations_max"):
        b, c = num(base, metric), num(cur, metric)
        allowed = b * (1 + options.iteration_margin) + options.iteration_slack
        if not math.isnan(b) and not math.isnan(c) and c > allowed:
            what = metric.replace("_", " ")
            add(metric, b, c, f"{what} grew {b:.1f} -> {c:.1f} (allowed up to {allowed:.1f})")
    return found


def _got_worse_down(b: float, c: float, allowed_drop: float) -> bool:
    """A rate that should not fall: NaN now but a value before also counts as worse."""
    if math.isnan(b):
        return False
    return math.isnan(c) or c < b - allowed_drop - 1e-12


def _error_growth(b: float, c: float, tol: float, growth: float) -> str:
    """Why an error measure got worse, or '' when it did not.

    Below the tolerance any value is fine; crossing it fails; once above it, only growth by more
    than ``growth`` times fails (the baseline already accepted that level).
    """
    if math.isnan(b) or math.isnan(tol):
        return ""
    if math.isnan(c):
        return f"was {b:.2e}, now not measured (NaN)"
    if b <= tol < c:
        return f"grew past tolerance {tol:.0e}: {b:.2e} -> {c:.2e}"
    if b > tol and c > growth * b:
        return f"grew {c / b:.0f}x above tolerance: {b:.2e} -> {c:.2e}"
    return ""


def _status_change(base: Row, cur: Row) -> tuple[int, int, str] | None:
    """More problems missing their intended status (or, without one recorded, not solved)."""
    counted = "n_expected_status" if not math.isnan(num(cur, "n_expected_status")) else "n_solved"
    b_good, c_good = num(base, counted), num(cur, counted)
    b_size, c_size = num(base, "batch_size"), num(cur, "batch_size")
    if any(math.isnan(v) for v in (b_good, c_good, b_size, c_size)):
        return None
    b_bad, c_bad = int(b_size - b_good), int(c_size - c_good)
    if c_bad <= b_bad:
        return None
    grown = []
    for column in FAILURE_COUNTS:
        b, c = num(base, column), num(cur, column)
        b, c = (0 if math.isnan(b) else int(b)), (0 if math.isnan(c) else int(c))
        if c > b:
            grown.append(f"{column[2:]} {b} -> {c}")
    detail = f" ({', '.join(grown)})" if grown else ""
    return b_bad, c_bad, f"problems without the expected status {b_bad} -> {c_bad}{detail}"
