"""Regression check: compare two results tables and decide whether the solver got worse.

Reads only results tables (``qpbench.results``), never a solver. Two kinds of evidence:

* **accuracy / robustness** (machine-independent, so compared directly): outcome, success rate,
  correct rate, status counts, residuals, objective and gradient errors, iteration counts;
* **speed** (machine-dependent, so never compared as absolute seconds): the solver's solve time
  is divided by a reference measured in the same run (the calibration kernel of the case and/or
  other solvers on the same case), and only the change of that ratio between the two tables is
  judged, against a margin derived from the spread of the repeats. A geometric mean over cases
  catches uniform slowdowns too small to stand out in any single case.

A speed regression (or a time limit hit) can be re-checked with a confirmation run
(``options.confirm``): it stands only if the re-run shows it too. See ``problems/regression.md`` for the reasoning.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import pandas as pd

from qpbench.status import Status

# A row is identified by these columns in both tables (case_id already encodes most of them;
# they are repeated so that a case_id scheme that omits one still keys correctly).
KEY_COLUMNS: tuple[str, ...] = ("case_id", "solver", "batch_size", "dtype", "device", "tolerance")
CALIBRATION = "calibration"  # the reference name of the calibration kernel (calibration_time)
AUTO = "auto"  # references: the calibration kernel and every solver not judged
# the runner's per-status count columns (qpbench.runner.measure), less solved
_FAILURE_COUNTS = tuple(f"n_{s.label}" for s in Status if s not in (Status.SOLVED, Status.RUNNING))
_RESIDUALS = ("primal_res_max", "dual_res_max", "gap_max")


class Regression(NamedTuple):
    """One finding that fails the check."""

    case: str
    metric: str
    baseline: Any
    current: Any
    message: str


@dataclass(frozen=True)
class CompareOptions:
    """Thresholds of the check; every default is explained in ``problems/regression.md``."""

    solvers: tuple[str, ...] = ("inhouse",)  # whose rows are judged (others may serve as references)
    references: tuple[str, ...] = (AUTO,)  # speed references: "calibration", solver names, or "auto"
    speed: bool = True  # False: judge accuracy only
    # Per-case speed margin: "auto" derives it from the repeats' spread (never below speed_floor);
    # a number fixes it (0.3 = fail when the time ratio grew by more than 30 %).
    speed_threshold: float | str = "auto"
    speed_floor: float = 0.25
    noise_k: float = 1.5  # multiples of the combined log-noise (ln median/min) allowed
    aggregate_threshold: float = 0.15  # geometric-mean slowdown over all cases that fails
    success_drop: float = 0.0  # allowed drop of success_rate / correct_rate (absolute)
    residual_growth: float = 10.0  # growth allowed for a residual already above tolerance
    gradient_tolerance: float = 1e-4  # relative gradient error that counts as wrong
    iteration_margin: float = 0.25  # relative growth of mean/max iterations allowed ...
    iteration_slack: float = 2.0  # ... plus this many iterations (small counts are jumpy)
    confirm: Callable[[], pd.DataFrame] | None = None  # re-runs the suite; see compare_tables

    def __post_init__(self) -> None:
        if not self.solvers:
            raise ValueError("solvers must name at least one solver")
        threshold = self.speed_threshold
        if threshold != "auto" and (isinstance(threshold, str) or not threshold > 0):
            raise ValueError(f"speed_threshold must be 'auto' or a number > 0, got {threshold!r}")
        for name in ("speed_floor", "aggregate_threshold", "noise_k", "iteration_margin", "iteration_slack"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        if not 0 <= self.success_drop <= 1:
            raise ValueError(f"success_drop must be in [0, 1], got {self.success_drop!r}")
        if not self.residual_growth >= 1:
            raise ValueError(f"residual_growth must be >= 1, got {self.residual_growth!r}")
        if self.speed and not self.references:
            raise ValueError("references must name at least one speed reference when speed is judged")


@dataclass
class SpeedDiff:
    """The time-ratio change of one case."""

    baseline_ratio: float
    current_ratio: float
    margin: float  # relative growth of the ratio tolerated as noise

    @property
    def change(self) -> float:
        return self.current_ratio / self.baseline_ratio

    @property
    def regressed(self) -> bool:
        return self.change > 1.0 + self.margin


@dataclass
class CaseDiff:
    """What changed in one row key between the tables (for the case-by-case table)."""

    case: str
    baseline: dict[str, Any]
    current: dict[str, Any]
    speed: SpeedDiff | None = None
    speed_note: str = ""
    findings: list[str] = field(default_factory=list)  # metrics that regressed
    cleared: list[str] = field(default_factory=list)  # findings the confirmation re-run did not reproduce


@dataclass
class Aggregate:
    """Noise-weighted geometric mean of the per-case ratio changes."""

    change: float
    margin: float
    cases: int

    @property
    def regressed(self) -> bool:
        return self.change > 1.0 + self.margin


@dataclass
class Comparison:
    """The verdict: ``ok`` is False when any regression was found."""

    cases: list[CaseDiff]
    regressions: list[Regression]
    notes: list[str]
    aggregate: Aggregate | None
    options: CompareOptions

    @property
    def ok(self) -> bool:
        return not self.regressions

    def render(self) -> str:
        return _render(self)


_AGGREGATE_CASE = "all timed cases"

# ----------------------------------------------------------------------------- public entry


def compare_tables(
    baseline: pd.DataFrame, current: pd.DataFrame, options: CompareOptions | None = None
) -> Comparison:
    """Compare ``current`` against ``baseline`` (both results tables, see ``qpbench.results``).

    Raises ValueError when the tables lack the key columns or share no row of the judged solvers.
    With ``options.confirm`` set and a load-dependent finding (time ratio, aggregate, timeout), the
    suite is re-run through it and the findings the re-run does not reproduce are dropped (kept
    as notes). Accuracy findings are never re-checked.
    """
    options = options or CompareOptions()
    first = _compare_once(baseline, current, options)
    speed_found = [r for r in first.regressions if _is_speed(r)]
    if not speed_found or options.confirm is None:
        if speed_found:
            first.notes.append("speed/timeout findings were not re-checked (no confirmation re-run given)")
        return first
    try:
        second = _compare_once(baseline, options.confirm(), options)
    except Exception as exc:  # the verdict must still come out; an unconfirmed slowdown stands
        first.notes.append(f"confirmation re-run failed ({exc}); speed/timeout findings stand unconfirmed")
        return first
    persisting = {(r.case, r.metric) for r in second.regressions if _is_speed(r)}
    pooled = _pooled_aggregate(first.aggregate, second.aggregate, options)
    if pooled is not None and pooled.regressed:
        # The aggregate is judged on both runs together (see _pooled_aggregate): a slowdown near
        # the limit would otherwise pass whenever either run alone fell just under it.
        persisting |= {(r.case, r.metric) for r in first.regressions if r.case == _AGGREGATE_CASE}
        first.notes.append(
            f"aggregate over both runs: {pooled.change:.2f}x (pooled margin {pooled.margin:.0%})"
        )
    kept = [r for r in first.regressions if not _is_speed(r) or (r.case, r.metric) in persisting]
    for reg in first.regressions:
        if reg not in kept:
            first.notes.append(
                f"{reg.case}: {reg.metric} not reproduced by the confirmation re-run ({reg.message})"
            )
    kept_keys = {(r.case, r.metric) for r in kept}
    for case in first.cases:
        case.cleared = [m for m in case.findings if (case.case, m) not in kept_keys]
        case.findings = [m for m in case.findings if (case.case, m) in kept_keys]
    confirmed = sum(_is_speed(r) for r in kept)
    first.notes.append(
        f"confirmation re-run: {confirmed} of {len(speed_found)} speed/timeout finding(s) reproduced"
    )
    first.regressions = kept
    return first


def _is_speed(reg: Regression) -> bool:
    """Findings that depend on the machine's load, so a confirmation re-run may clear them:
    the time ratios, and a time limit hit (a busy machine can push a solve past its limit)."""
    return reg.metric in ("time_ratio", "time_ratio_geomean") or (
        reg.metric == "outcome" and reg.current == "timeout"
    )


# ----------------------------------------------------------------------------- one comparison


def _compare_once(baseline: pd.DataFrame, current: pd.DataFrame, options: CompareOptions) -> Comparison:
    for label, table in (("baseline", baseline), ("current", current)):
        missing = [c for c in KEY_COLUMNS if c not in table.columns]
        if missing:
            raise ValueError(f"{label} table lacks key columns {missing}")
    notes: list[str] = []
    base_rows = _latest_rows(baseline, "baseline", notes)
    cur_rows = _latest_rows(current, "current", notes)
    judged = set(options.solvers)
    base_keys = {k for k in base_rows if k[1] in judged}
    cur_keys = {k for k in cur_rows if k[1] in judged}
    common = sorted(base_keys & cur_keys, key=_sort_key)
    if not common:
        raise ValueError(
            f"no common cases for solver(s) {sorted(judged)}: baseline has {len(base_keys)} row(s), "
            f"current has {len(cur_keys)}"
        )
    for key in sorted(base_keys - cur_keys, key=_sort_key):
        notes.append(f"{_label(key)}: in the baseline only (suite changed?); not judged")
    for key in sorted(cur_keys - base_keys, key=_sort_key):
        notes.append(f"{_label(key)}: new in the current table; not judged")

    regressions: list[Regression] = []
    cases: list[CaseDiff] = []
    speeds = _speed_diffs(common, base_rows, cur_rows, options) if options.speed else {}
    for key in common:
        diff = CaseDiff(_label(key), base_rows[key], cur_rows[key])
        found = _accuracy_findings(diff.case, diff.baseline, diff.current, options)
        if options.speed:
            diff.speed, diff.speed_note = speeds[key]
            if diff.speed is not None and diff.speed.regressed:
                s = diff.speed
                found.append(
                    Regression(
                        diff.case,
                        "time_ratio",
                        s.baseline_ratio,
                        s.current_ratio,
                        f"solve time / reference grew {s.change:.2f}x "
                        f"({s.baseline_ratio:.3g} -> {s.current_ratio:.3g}; noise margin {s.margin:.0%})",
                    )
                )
        diff.findings = [f.metric for f in found]
        regressions.extend(found)
        cases.append(diff)

    aggregate = _aggregate(cases, options) if options.speed else None
    if aggregate is not None and aggregate.regressed:
        regressions.append(
            Regression(
                _AGGREGATE_CASE,  # the same label in a confirmation re-run, whatever it timed
                "time_ratio_geomean",
                1.0,
                aggregate.change,
                f"geometric mean of time-ratio changes over {aggregate.cases} case(s) is "
                f"{aggregate.change:.2f}x (margin {aggregate.margin:.0%})",
            )
        )
    return Comparison(cases, regressions, notes, aggregate, options)


def _latest_rows(table: pd.DataFrame, label: str, notes: list[str]) -> dict[tuple, dict[str, Any]]:
    """One row per key; a key written twice (a resumed or repeated run) keeps its last row."""
    rows: dict[tuple, dict[str, Any]] = {}
    duplicates = 0
    for record in table.to_dict("records"):
        key = tuple(_key_part(record.get(c)) for c in KEY_COLUMNS)
        duplicates += key in rows
        rows[key] = record
    if duplicates:
        notes.append(f"{label}: {duplicates} duplicate row(s); the last of each was used")
    return rows


def _key_part(value: Any) -> Any:
    if _missing(value):
        return ""
    if isinstance(value, float) and value.is_integer():
        return int(value)  # a batch size read back as 64.0 still matches 64
    return value


def _sort_key(key: tuple) -> tuple:
    return tuple(str(part) for part in key)


def _label(key: tuple) -> str:
    case_id, solver, batch, dtype, device, tol = key
    return f"{case_id} [{solver} B={batch} {dtype} {device} tol={tol}]"


def _missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):  # lists (solve_times) are not missing
        return False


def _num(row: dict[str, Any], column: str) -> float:
    value = row.get(column)
    if _missing(value):
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


# ----------------------------------------------------------------------------- accuracy


def _accuracy_findings(
    case: str, base: dict[str, Any], cur: dict[str, Any], options: CompareOptions
) -> list[Regression]:
    found: list[Regression] = []

    def add(metric: str, b: Any, c: Any, message: str) -> None:
        found.append(Regression(case, metric, b, c, message))

    b_out, c_out = str(base.get("outcome") or ""), str(cur.get("outcome") or "")
    if b_out == "ok" and c_out != "ok":
        error = str(cur.get("error") or "").strip()
        add("outcome", b_out, c_out, f"outcome ok -> {c_out}" + (f": {error}" if error else ""))
        return found  # nothing else of the current row is meaningful
    if c_out != "ok":
        return found  # was already not ok: no worse than before

    for metric in ("success_rate", "correct_rate"):
        b, c = _num(base, metric), _num(cur, metric)
        if _got_worse_down(b, c, options.success_drop):
            add(metric, b, c, f"{metric.replace('_', ' ')} dropped {b:.3f} -> {c:.3f}")

    status = _status_change(base, cur)
    if status is not None:
        add("status", status[0], status[1], status[2])

    eps = _num(cur, "tolerance_eps")
    if math.isnan(eps):
        eps = _num(base, "tolerance_eps")
    for metric in _RESIDUALS:
        message = _error_growth(_num(base, metric), _num(cur, metric), eps, options.residual_growth)
        if message:
            add(metric, _num(base, metric), _num(cur, metric), f"{metric} {message} (eps {eps:.0e})")
    # Objective error is relative, so the tolerance level is the right scale for it too;
    # gradient errors are judged against their own tolerance (finite differences are coarser).
    for metric, tol, what in (
        ("obj_rel_err_max", eps, "objective error"),
        ("grad_err_max", options.gradient_tolerance, "gradient error"),
    ):
        b, c = _num(base, metric), _num(cur, metric)
        message = _error_growth(b, c, tol, options.residual_growth)
        if message:
            add(metric, b, c, f"{what} {message}")

    for metric in ("iterations_mean", "iterations_max"):
        b, c = _num(base, metric), _num(cur, metric)
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


def _status_change(base: dict[str, Any], cur: dict[str, Any]) -> tuple[int, int, str] | None:
    """More problems missing their intended status (or, without one recorded, not solved)."""
    counted = "n_expected_status" if not math.isnan(_num(cur, "n_expected_status")) else "n_solved"
    b_good, c_good = _num(base, counted), _num(cur, counted)
    b_size, c_size = _num(base, "batch_size"), _num(cur, "batch_size")
    if any(math.isnan(v) for v in (b_good, c_good, b_size, c_size)):
        return None
    b_bad, c_bad = int(b_size - b_good), int(c_size - c_good)
    if c_bad <= b_bad:
        return None
    grown = []
    for column in _FAILURE_COUNTS:
        b, c = _num(base, column), _num(cur, column)
        b, c = (0 if math.isnan(b) else int(b)), (0 if math.isnan(c) else int(c))
        if c > b:
            grown.append(f"{column[2:]} {b} -> {c}")
    detail = f" ({', '.join(grown)})" if grown else ""
    return b_bad, c_bad, f"problems without the expected status {b_bad} -> {c_bad}{detail}"


# ----------------------------------------------------------------------------- speed


def _noise(row: dict[str, Any]) -> float:
    """How far load moved the median: ln(median / min) of the repeats.

    Timing noise is one-sided (a busy machine only adds time) and the fastest repeat is the
    cleanest, so the median's distance from it is the noise the median carries. Unlike the full
    range it ignores a single slow outlier, which the median ignores too.
    """
    lo, mid = _num(row, "solve_time_min"), _num(row, "solve_time_median")
    if math.isnan(lo) or math.isnan(mid) or lo <= 0 or mid < lo:
        return 0.0
    return math.log(mid / lo)


def _typical_noise(rows: dict[tuple, dict[str, Any]]) -> float:
    """The machine's noise during a run: the median of :func:`_noise` over all its timed rows.

    Noise is a property of the machine more than of a case; a case whose few repeats happened to
    agree closely must not get a margin tighter than the run's typical one.
    """
    noises = sorted(_noise(r) for r in rows.values() if str(r.get("outcome")) == "ok")
    return noises[len(noises) // 2] if noises else 0.0


@dataclass
class _Timing:
    """One reference's time of a case in one table, and the noise it carries."""

    seconds: float
    noise: float


def _reference_times(
    key: tuple, rows: dict[tuple, dict[str, Any]], names: Sequence[str], typical: float
) -> dict[str, _Timing]:
    """The case's reference times in one table, by reference name (missing ones left out)."""
    row = rows[key]
    found: dict[str, _Timing] = {}
    for name in names:
        if name == CALIBRATION:
            t = _num(row, "calibration_time")
            noise = typical  # its repeats' spread is not recorded: assume the run's typical noise
        else:
            other = rows.get((key[0], name, *key[2:]))
            if other is None or str(other.get("outcome")) != "ok":
                continue
            t = _num(other, "solve_time_median")
            noise = max(_noise(other), typical)
        if t > 0:  # False for NaN too
            found[name] = _Timing(t, noise)
    return found


def _reference_names(options: CompareOptions, rows: dict[tuple, dict[str, Any]]) -> list[str]:
    """``auto`` is the calibration kernel plus every solver that is not judged."""
    names: list[str] = []
    for name in options.references:
        if name == AUTO:
            others = sorted({k[1] for k in rows} - set(options.solvers))
            names += [CALIBRATION, *others]
        else:
            names.append(name)
    return list(dict.fromkeys(names))


def _speed_diffs(
    keys: list[tuple],
    base_rows: dict[tuple, dict[str, Any]],
    cur_rows: dict[tuple, dict[str, Any]],
    options: CompareOptions,
) -> dict[tuple, tuple[SpeedDiff | None, str]]:
    """Time-ratio change and noise margin of every case.

    The reference code does not change between the tables, so each reference's change
    ln(current / baseline) is one machine factor: with three or more cases, the median change
    over the cases is used for every case (a kernel that a busy machine slowed 100x in one case
    cannot pass for a 100x faster solver, nor widen that case's margin). How far the references'
    factors differ from each other is measured noise, added to the margin.
    """
    names = _reference_names(options, {**base_rows, **cur_rows})
    b_typical, c_typical = _typical_noise(base_rows), _typical_noise(cur_rows)
    out: dict[tuple, tuple[SpeedDiff | None, str]] = {}
    pending: dict[tuple, tuple[float, float, float, dict[str, _Timing], dict[str, _Timing], dict[str, float]]] = {}
    changes: dict[str, list[float]] = {}
    for key in keys:
        base, cur = base_rows[key], cur_rows[key]
        if str(base.get("outcome")) != "ok" or str(cur.get("outcome")) != "ok":
            out[key] = (None, "not timed (outcome not ok)")
            continue
        b_time, c_time = _num(base, "solve_time_median"), _num(cur, "solve_time_median")
        if not (b_time > 0 and c_time > 0):
            out[key] = (None, "no solve time")
            continue
        b_refs = _reference_times(key, base_rows, names, b_typical)
        c_refs = _reference_times(key, cur_rows, names, c_typical)
        shared = [name for name in names if name in b_refs and name in c_refs]
        if not shared:
            out[key] = (None, "no reference time in both tables")
            continue
        b_refs = {name: b_refs[name] for name in shared}
        c_refs = {name: c_refs[name] for name in shared}
        ref_logs = {name: math.log(c_refs[name].seconds / b_refs[name].seconds) for name in shared}
        for name, change in ref_logs.items():
            changes.setdefault(name, []).append(change)
        own_noise = max(_noise(base), b_typical) + max(_noise(cur), c_typical)
        pending[key] = (b_time, c_time, own_noise, b_refs, c_refs, ref_logs)

    # A reference's code is the same in both tables, so its change is one machine factor: with
    # three or more cases it is taken as the median change over the cases, for every case. A burst
    # of load that stalls one case's reference (measured: the calibration kernel of one case 1.8x
    # slow in one run, all 7 repeats) then neither passes for a faster nor for a slower solver.
    machine = {name: statistics.median(values) for name, values in changes.items() if len(values) >= 3}
    for key, (b_time, c_time, own_noise, b_refs, c_refs, ref_logs) in pending.items():
        ref_noises, ref_changes = [], []
        for name, change in ref_logs.items():
            ref_noises.append(b_refs[name].noise + c_refs[name].noise)
            ref_changes.append(machine.get(name, change))
        disagreement = (max(ref_changes) - min(ref_changes)) / 2  # 0 with a single reference
        noise = own_noise + sum(ref_noises) / len(ref_noises) + disagreement
        if options.speed_threshold == "auto":
            margin = max(options.speed_floor, math.exp(options.noise_k * noise) - 1.0)
        else:
            margin = float(options.speed_threshold)
        b_ref = _geomean([t.seconds for t in b_refs.values()])
        c_ref = b_ref * math.exp(sum(ref_changes) / len(ref_changes))  # the machine-factor reference
        out[key] = (SpeedDiff(b_time / b_ref, c_time / c_ref, margin), "vs " + "+".join(b_refs))
    return out


def _geomean(values: Sequence[float]) -> float:
    return math.exp(sum(math.log(v) for v in values) / len(values))


def _pooled_aggregate(first: Aggregate | None, second: Aggregate | None, options: CompareOptions) -> Aggregate | None:
    """The aggregate of a run and its confirmation re-run taken together.

    The change is the geometric mean of the two; the noise part of the margin shrinks by sqrt(2)
    (two independent runs), never below ``aggregate_threshold``. A load spike in one run moves
    the pooled change only half as far, so this keeps false alarms rare while a real slowdown
    near the limit is no longer cleared by one lucky re-run.
    """
    if first is None or second is None:
        return None
    change = math.sqrt(first.change * second.change)
    noise = max(math.log1p(first.margin), math.log1p(second.margin)) / math.sqrt(2.0)
    margin = max(options.aggregate_threshold, math.expm1(noise))
    return Aggregate(change, margin, min(first.cases, second.cases))


def _aggregate(cases: list[CaseDiff], options: CompareOptions) -> Aggregate | None:
    """Noise-weighted geometric mean of the ratio changes.

    Each case's log-change is weighted by 1 / sigma^2 with sigma = ln(1 + its margin), so a case
    whose timings are known to be wild cannot drag the mean; with equal noise this is the plain
    geometric mean. Its own noise is 1 / sqrt(sum of weights): sigma / sqrt(N) for N equal cases.
    """
    timed = [c.speed for c in cases if c.speed is not None]
    if not timed:
        return None
    weights = [1.0 / max(math.log1p(s.margin), 1e-6) ** 2 for s in timed]
    total = sum(weights)
    mean = sum(w * math.log(s.change) for w, s in zip(weights, timed, strict=True)) / total
    margin = options.aggregate_threshold
    if options.speed_threshold == "auto":
        margin = max(margin, math.expm1(1.0 / math.sqrt(total)))
    return Aggregate(math.exp(mean), margin, len(timed))


def environment_notes(baseline: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """What differs between the two runs' machine records (``environment.json``).

    Informational: the in-run ratios are there so that a different machine does not fail the
    check, but a reader of a verdict should know when the machines or libraries differ.
    """
    if not baseline or not current:
        return ["environment record missing in " + ("baseline" if not baseline else "current")]
    notes = []
    for field_name in ("cpu_model", "cpu_cores", "cpu_affinity", "torch_threads", "gpus", "python"):
        b, c = baseline.get(field_name), current.get(field_name)
        if b != c:
            notes.append(f"environment differs: {field_name} {b!r} -> {c!r}")
    b_libs, c_libs = baseline.get("libraries") or {}, current.get("libraries") or {}
    for lib in sorted(set(b_libs) | set(c_libs)):
        if b_libs.get(lib) != c_libs.get(lib):
            notes.append(f"environment differs: {lib} {b_libs.get(lib)} -> {c_libs.get(lib)}")
    b_git, c_git = baseline.get("git") or {}, current.get("git") or {}
    if b_git.get("commit") or c_git.get("commit"):
        notes.append(f"commits: baseline {b_git.get('commit')}, current {c_git.get('commit')}")
    return notes


# ----------------------------------------------------------------------------- rendering


def _fmt(value: float, spec: str) -> str:
    return "-" if math.isnan(value) else format(value, spec)


def _pair(base: dict[str, Any], cur: dict[str, Any], column: str, spec: str) -> str:
    b, c = _num(base, column), _num(cur, column)
    return f"{_fmt(b, spec)} → {_fmt(c, spec)}"


def _worst_residual(row: dict[str, Any]) -> float:
    values = [_num(row, c) for c in _RESIDUALS]
    values = [v for v in values if not math.isnan(v)]
    return max(values) if values else math.nan


def _render(comp: Comparison) -> str:
    header = ["case", "outcome", "success", "worst residual", "iterations", "time ratio", "change", "verdict"]
    lines = ["## Regression check: case by case", ""]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "|".join("---" for _ in header) + "|")
    for case in comp.cases:
        b, c = case.baseline, case.current
        outcome = f"{b.get('outcome') or '-'} → {c.get('outcome') or '-'}"
        residual = f"{_fmt(_worst_residual(b), '.1e')} → {_fmt(_worst_residual(c), '.1e')}"
        if case.speed is not None:
            s = case.speed
            ratio = f"{s.baseline_ratio:.3g} → {s.current_ratio:.3g} ({case.speed_note})"
            change = f"{s.change:.2f}x (limit {1 + s.margin:.3g}x)"
        else:
            ratio, change = case.speed_note or "-", "-"
        verdict = "REGRESSED: " + ", ".join(case.findings) if case.findings else "ok"
        if case.cleared:
            verdict += f" ({', '.join(case.cleared)} not reproduced on re-run)"
        cells = [
            case.case,
            outcome,
            _pair(b, c, "success_rate", ".3f"),
            residual,
            _pair(b, c, "iterations_mean", ".1f"),
            ratio,
            change,
            verdict,
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    agg = comp.aggregate
    if agg is not None:
        lines.append(
            f"Speed over {agg.cases} timed case(s): geometric mean of ratio changes {agg.change:.3f}x "
            f"(fails above {1 + agg.margin:.3f}x)."
        )
    elif comp.options.speed:
        lines.append("Speed: no case could be timed against a reference in both tables.")
    else:
        lines.append("Speed: not judged (accuracy only).")
    if comp.notes:
        lines += ["", "Notes:"] + [f"- {note}" for note in comp.notes]
    lines.append("")
    if comp.ok:
        lines.append(f"VERDICT: no regression ({len(comp.cases)} case(s) compared)")
    else:
        lines.append(f"VERDICT: REGRESSION ({len(comp.regressions)} finding(s))")
        lines += [f"- {r.case}: {r.metric}: {r.message}" for r in comp.regressions]
    return "\n".join(lines) + "\n"
