"""A comparison as Markdown (one line per case, then the suite, the promise, notes, the verdict)
and as a plain dict (``qpbench compare --json``)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from qpbench.regression.accuracy import RESIDUALS
from qpbench.regression.decision import Estimate, Verdict
from qpbench.regression.rows import Row, num

if TYPE_CHECKING:
    from qpbench.regression.check import CaseDiff, Comparison

HEADER = ["case", "outcome", "success", "worst residual", "iterations", "factorizations", "time change", "verdict"]


def _fmt(value: float, spec: str) -> str:
    return "-" if math.isnan(value) else format(value, spec)


def _pair(base: Row, cur: Row, column: str, spec: str) -> str:
    return f"{_fmt(num(base, column), spec)} → {_fmt(num(cur, column), spec)}"


def _worst_residual(row: Row) -> float:
    values = [v for v in (num(row, c) for c in RESIDUALS) if not math.isnan(v)]
    return max(values) if values else math.nan


def _speed_cell(case: CaseDiff) -> str:
    if case.speed is None:
        return case.speed_note or "-"
    s = case.speed
    ratio = ""
    if s.baseline_ratio is not None and s.current_ratio is not None:
        ratio = f"; ratio {s.baseline_ratio:.3g} → {s.current_ratio:.3g}"
    return f"{s.estimate.describe()} ({s.basis}{ratio}); limit {s.estimate.limit:.3f}x"


def _case_verdict(case: CaseDiff) -> str:
    if case.findings:
        return "REGRESSED: " + ", ".join(case.findings)
    if case.speed is not None and case.speed.estimate.verdict is Verdict.INCONCLUSIVE:
        return "inconclusive (time)"
    return "ok"


def _case_line(case: CaseDiff) -> str:
    b, c = case.baseline, case.current
    cells = [
        case.case,
        f"{b.get('outcome') or '-'} → {c.get('outcome') or '-'}",
        _pair(b, c, "success_rate", ".3f"),
        f"{_fmt(_worst_residual(b), '.1e')} → {_fmt(_worst_residual(c), '.1e')}",
        _pair(b, c, "iterations_mean", ".1f"),
        _pair(b, c, "work_factorizations", ".0f"),
        _speed_cell(case),
        _case_verdict(case),
    ]
    return "| " + " | ".join(cells) + " |"


def _speed_summary(comp: Comparison) -> str:
    agg = comp.aggregate
    if agg is not None:
        timed = sum(c.speed is not None for c in comp.cases)
        return (f"Speed over {timed} timed case(s) ({comp.mode}, noise-weighted geometric mean): "
                f"{agg.describe()}; regression above {agg.limit:.3f}x: {agg.verdict.value}.")
    if comp.options.speed:
        return "Speed: no case could be timed."
    return "Speed: not judged (accuracy and work counts only)."


def render(comp: Comparison) -> str:
    lines = [f"## Regression check ({comp.mode}): case by case", ""]
    lines.append("| " + " | ".join(HEADER) + " |")
    lines.append("|" + "|".join("---" for _ in HEADER) + "|")
    lines += [_case_line(case) for case in comp.cases]
    lines += ["", _speed_summary(comp)]
    if comp.options.speed:
        lines += ["", f"Promise ({comp.mode}): this check {comp.promise.describe()}."]
    if comp.notes:
        lines += ["", "Notes:"] + [f"- {note}" for note in comp.notes]
    lines.append("")
    verdict = comp.verdict
    if verdict is Verdict.PASS:
        lines.append(f"VERDICT: PASS ({len(comp.cases)} case(s) compared{_promise_tail(comp)})")
    elif verdict is Verdict.REGRESSION:
        lines.append(f"VERDICT: REGRESSION ({len(comp.regressions)} finding(s){_promise_tail(comp)})")
        lines += [f"- {r.case}: {r.metric}: {r.message}" for r in comp.regressions]
    else:
        lines.append(f"VERDICT: INCONCLUSIVE (noise too large to detect the promised slowdown{_promise_tail(comp)})")
        lines += [f"- {reason}" for reason in comp.inconclusive_reasons()]
    return "\n".join(lines) + "\n"


def _promise_tail(comp: Comparison) -> str:
    if not comp.options.speed:
        return "; speed not judged"
    return f"; promise {comp.promise.suite:g}x suite, {comp.promise.case:g}x single case, {comp.mode}"


def _estimate(e: Estimate | None) -> dict[str, Any] | None:
    if e is None:
        return None
    return {"change": e.change, "low": e.low, "high": e.high, "limit": e.limit, "promise": e.promise,
            "verdict": e.verdict.value}


def as_dict(comp: Comparison) -> dict[str, Any]:
    return {
        "verdict": comp.verdict.value,
        "mode": comp.mode,
        "runs": comp.runs,
        "promise": {"suite": comp.promise.suite, "case": comp.promise.case},
        "aggregate": _estimate(comp.aggregate),
        "cases": [
            {"case": c.case, "findings": c.findings, "speed": _estimate(c.speed.estimate) if c.speed else None,
             "speed_note": c.speed_note}
            for c in comp.cases
        ],
        "regressions": [{"case": r.case, "metric": r.metric, "message": r.message} for r in comp.regressions],
        "inconclusive": comp.inconclusive_reasons(),
        "notes": comp.notes,
    }
