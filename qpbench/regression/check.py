"""One comparison: a baseline table against one current table (or several runs of it), judged.

Rows are matched on their key; only the judged solvers' rows are cases. Per case: accuracy
(``accuracy``), work counts (``work``) and speed: paired (``paired``) when both tables come from
one paired session; else the change of the in-run ratio to reference solvers, from pairs timed in
turn within each table (``interleaved``) where both tables have them, or from medians and the
calibration kernel (``unpaired``). Speed is also judged over all
timed cases together (a noise-weighted mean of the changes), which resolves uniform slowdowns
smaller than any single case can. Each speed estimate has three possible verdicts
(``decision``); the comparison's verdict is a regression if anything regressed, inconclusive if
some speed estimate is, and a pass otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from qpbench.regression.accuracy import accuracy_findings
from qpbench.regression.decision import Estimate, Promise, Verdict, combined, worst
from qpbench.regression.interleaved import interleaved_estimate, is_interleaved
from qpbench.regression.machines import one_machine
from qpbench.regression.options import AUTO, CALIBRATION, CompareOptions
from qpbench.regression.paired import are_paired, paired_estimate
from qpbench.regression.rows import Finding, Row, Rows, label, latest_rows, sort_key
from qpbench.regression.unpaired import RunSpeed, pooled_estimate, run_speeds
from qpbench.regression.work import has_work, work_findings

AGGREGATE = "all timed cases"
PAIRED, UNPAIRED = "paired", "unpaired"
# The metrics of the findings only the clock makes: a case's time and the suite's.
CASE_TIME, SUITE_TIME = "time_change", "time_change_geomean"


@dataclass
class CaseSpeed:
    """A case's measured change, what it was measured against, and (unpaired) its time ratio."""

    estimate: Estimate
    basis: str
    baseline_ratio: float | None = None

    @property
    def current_ratio(self) -> float | None:
        return None if self.baseline_ratio is None else self.baseline_ratio * self.estimate.change


@dataclass
class CaseDiff:
    """What changed in one row key between the tables."""

    case: str
    baseline: Row
    current: Row
    speed: CaseSpeed | None = None
    speed_note: str = ""
    findings: list[str] = field(default_factory=list)  # metrics that regressed


@dataclass
class Comparison:
    mode: str  # PAIRED or UNPAIRED
    promise: Promise
    cases: list[CaseDiff]
    regressions: list[Finding]
    notes: list[str]
    aggregate: Estimate | None
    options: CompareOptions
    runs: int = 1  # current runs pooled (more than 1 after a re-measurement)

    @property
    def speed_verdict(self) -> Verdict | None:
        """None when speed is not judged; inconclusive when no case could be timed."""
        if not self.options.speed:
            return None
        timed = [c.speed.estimate for c in self.cases if c.speed is not None]
        if not timed or self.aggregate is None:
            return Verdict.INCONCLUSIVE
        return worst([self.aggregate.verdict, *(e.verdict for e in timed)])

    @property
    def verdict(self) -> Verdict:
        if self.regressions:
            return Verdict.REGRESSION
        return Verdict.INCONCLUSIVE if self.speed_verdict is Verdict.INCONCLUSIVE else Verdict.PASS

    @property
    def ok(self) -> bool:
        return self.verdict is Verdict.PASS

    @property
    def regressed_by_the_clock_alone(self) -> bool:
        """A regression whose every finding is a speed finding: accuracy and work counts do not
        depend on the machine, so only these can be an artefact of one measurement session."""
        return bool(self.regressions) and all(f.metric in (CASE_TIME, SUITE_TIME) for f in self.regressions)

    def inconclusive_reasons(self) -> list[str]:
        if self.speed_verdict is not Verdict.INCONCLUSIVE:
            return []
        if self.aggregate is None:
            return ["no case could be timed, so no slowdown can be detected"]
        reasons = []
        if self.aggregate.verdict is Verdict.INCONCLUSIVE:
            reasons.append(f"{AGGREGATE}: {self.aggregate.describe()} is too wide to tell 1x from "
                           f"{self.promise.suite:g}x")
        for case in self.cases:
            if case.speed is not None and case.speed.estimate.verdict is Verdict.INCONCLUSIVE:
                reasons.append(f"{case.case}: {case.speed.estimate.describe()} is too wide to tell 1x from "
                               f"{self.promise.case:g}x")
        return reasons

    def render(self) -> str:
        from qpbench.regression.render import render

        return render(self)

    def to_dict(self) -> dict[str, Any]:
        from qpbench.regression.render import as_dict

        return as_dict(self)


def compare_tables(
    baseline: pd.DataFrame,
    current: pd.DataFrame | Sequence[pd.DataFrame],
    options: CompareOptions | None = None,
) -> Comparison:
    """Compare ``current`` (a results table, or several runs of the same suite) with ``baseline``.

    Raises ValueError when a table lacks the key columns, holds rows of several machines and
    ``options.machine`` does not pick one of them (``machines.one_machine``), or no row of the
    judged solvers is in both. With several current runs (sessions, or a re-measurement), accuracy and work counts are
    judged on the last one and unpaired speed on all of them together (``interleaved``,
    ``unpaired``).
    """
    options = options or CompareOptions()
    currents = [current] if isinstance(current, pd.DataFrame) else list(current)
    if not currents:
        raise ValueError("current must hold at least one results table")
    notes: list[str] = []
    baseline = one_machine(baseline, options.machine, "baseline", notes)
    currents = [one_machine(t, options.machine, "current", notes) for t in currents]
    base_rows = latest_rows(baseline, "baseline", notes)
    runs = [latest_rows(t, "current" if len(currents) == 1 else f"current run {i + 1}", notes)
            for i, t in enumerate(currents)]
    cur_rows = runs[-1]
    common = _common_keys(base_rows, cur_rows, options, notes)
    paired = len(runs) == 1 and are_paired(common, base_rows, cur_rows)
    promise = options.promise_for(paired)
    speeds = _speeds(common, base_rows, runs, paired, promise, options) if options.speed else {}

    cases: list[CaseDiff] = []
    regressions: list[Finding] = []
    for key in common:
        diff = CaseDiff(label(key), base_rows[key], cur_rows[key])
        found = accuracy_findings(diff.case, diff.baseline, diff.current, options)
        work, work_notes = work_findings(diff.case, diff.baseline, diff.current, options.work_tolerance)
        found += work
        notes += work_notes
        if options.speed:
            diff.speed, diff.speed_note = speeds[key]
            if diff.speed is not None and diff.speed.estimate.verdict is Verdict.REGRESSION:
                found.append(_speed_finding(diff.case, CASE_TIME, diff.speed.estimate))
        diff.findings = [f.metric for f in found]
        regressions += found
        cases.append(diff)
    notes += _work_coverage_notes(cases)

    aggregate = None
    if options.speed:
        aggregate = combined([c.speed.estimate for c in cases if c.speed is not None], promise.suite)
        if aggregate is not None and aggregate.verdict is Verdict.REGRESSION:
            regressions.append(_speed_finding(AGGREGATE, SUITE_TIME, aggregate))
    mode = PAIRED if paired else UNPAIRED
    return Comparison(mode, promise, cases, regressions, notes, aggregate, options, runs=len(runs))


def _common_keys(base_rows: Rows, cur_rows: Rows, options: CompareOptions, notes: list[str]) -> list[tuple]:
    judged = set(options.solvers)
    base_keys = {k for k in base_rows if k[1] in judged}
    cur_keys = {k for k in cur_rows if k[1] in judged}
    common = sorted(base_keys & cur_keys, key=sort_key)
    if not common:
        raise ValueError(
            f"no common cases for solver(s) {sorted(judged)}: baseline has {len(base_keys)} row(s), "
            f"current has {len(cur_keys)}"
        )
    notes += [f"{label(k)}: in the baseline only (suite changed?); not judged"
              for k in sorted(base_keys - cur_keys, key=sort_key)]
    notes += [f"{label(k)}: new in the current table; not judged" for k in sorted(cur_keys - base_keys, key=sort_key)]
    return common


def _speeds(
    keys: list[tuple], base_rows: Rows, runs: list[Rows], paired: bool, promise: Promise, options: CompareOptions
) -> dict[tuple, tuple[CaseSpeed | None, str]]:
    if paired:
        out = {}
        for key in keys:
            estimate, basis = paired_estimate(base_rows[key], runs[0][key], promise.case, options.z, options.min_pairs)
            out[key] = (CaseSpeed(estimate, basis) if estimate is not None else None, "" if estimate else basis)
        return out
    judged = set(options.solvers)
    wanted = None if AUTO in options.references else [r for r in options.references if r != CALIBRATION]
    if (wanted is None or wanted) and all(is_interleaved(keys, rows, judged) for rows in (base_rows, *runs)):
        out = {}
        for key in keys:
            estimate, basis = interleaved_estimate(
                key, base_rows, runs, judged, wanted, promise.case, options.z, options.min_pairs
            )
            out[key] = (CaseSpeed(estimate, basis) if estimate is not None else None, "" if estimate else basis)
        return out
    per_run = [run_speeds(keys, base_rows, rows, options) for rows in runs]
    out = {}
    for key in keys:
        timed = [speed for speeds in per_run if isinstance(speed := speeds[key], RunSpeed)]
        if not timed:
            out[key] = (None, str(per_run[-1][key]))
            continue
        estimate = pooled_estimate(timed, promise.case, options.noise_k)
        basis = f"vs {timed[0].references}" + (f", {len(timed)} runs" if len(timed) > 1 else "")
        out[key] = (CaseSpeed(estimate, basis, timed[0].baseline_ratio), "")
    return out


def _speed_finding(case: str, metric: str, estimate: Estimate) -> Finding:
    return Finding(
        case,
        metric,
        1.0,
        estimate.change,
        f"time {estimate.describe()}: above the limit {estimate.limit:.3f}x and clear of no change",
    )


def _work_coverage_notes(cases: list[CaseDiff]) -> list[str]:
    """Say when work counts could not be compared because one table has none."""
    base_has = any(has_work(c.baseline) for c in cases)
    cur_has = any(has_work(c.current) for c in cases)
    if base_has and not cur_has:
        return ["work counts: in the baseline only (current solver or qpbench does not report them); not compared"]
    if cur_has and not base_has:
        return ["work counts: not in the baseline (measured before qpbench recorded them); not compared"]
    return []
