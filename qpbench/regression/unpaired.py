"""Speed from unpaired tables (a committed baseline and a fresh run): ratios to in-run references.

Absolute seconds say more about the machine than the solver, so a solve time is divided by
references measured in the same run: the calibration kernel (``calibration_time``) and/or other
solvers on the same case. A reference's code is the same in both tables, so its change
ln(current / baseline) is one machine factor: with three or more cases it is the median over the
cases, used for every case (a kernel stalled by load in one case moves nothing). The case's
change is the solver's time change less the mean machine factor of its references.

The noise a median carries is ln(median / min) of its repeats (load only adds time, so the
fastest repeat is the cleanest), never below the run's typical value. A case's noise is the sum
of its solve times' noise in both tables, the references' noise, and half the spread of the
references' machine factors: summed, not combined in quadrature, because the spread of repeats
understates load that changes between the moments a case and its references are timed (at load
5 to 8, quadrature made intervals narrower than the changes an unchanged solver showed). The
interval's half-width is ``noise_k`` times that noise. With several current runs (a
re-measurement) the current side's share shrinks by sqrt(runs); the baseline's does not.

This is the fallback for tables measured by ``qpbench run``; tables of interleaved sessions are
compared by their in-run ratios instead (``interleaved``), which move far less with load.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from qpbench.regression.decision import Estimate
from qpbench.regression.options import AUTO, CALIBRATION, CompareOptions
from qpbench.regression.rows import Row, Rows, is_ok, num


@dataclass(frozen=True)
class Timing:
    """One reference's time of a case in one table, and the noise it carries."""

    seconds: float
    noise: float


@dataclass(frozen=True)
class RunSpeed:
    """One case in one current run, against the baseline."""

    log_change: float
    baseline_ratio: float  # the baseline's solve time / its reference time
    base_noise: float
    cur_noise: float
    references: str


def noise(row: Row) -> float:
    """How far load moved the median: ln(median / min) of the repeats."""
    lo, mid = num(row, "solve_time_min"), num(row, "solve_time_median")
    if math.isnan(lo) or math.isnan(mid) or lo <= 0 or mid < lo:
        return 0.0
    return math.log(mid / lo)


def typical_noise(rows: Rows) -> float:
    """The machine's noise during a run: the median of :func:`noise` over its timed rows (noise
    belongs to the machine more than to one case, and a few repeats can agree by luck)."""
    noises = sorted(noise(r) for r in rows.values() if is_ok(r))
    return noises[len(noises) // 2] if noises else 0.0


def reference_names(options: CompareOptions, rows: Rows) -> list[str]:
    """``auto`` is the calibration kernel plus every solver that is not judged."""
    names: list[str] = []
    for name in options.references:
        if name == AUTO:
            names += [CALIBRATION, *sorted({k[1] for k in rows} - set(options.solvers))]
        else:
            names.append(name)
    return list(dict.fromkeys(names))


def reference_times(key: tuple, rows: Rows, names: Sequence[str], typical: float) -> dict[str, Timing]:
    """The case's reference times in one table, by reference name (missing ones left out)."""
    row = rows[key]
    found: dict[str, Timing] = {}
    for name in names:
        if name == CALIBRATION:
            seconds = num(row, "calibration_time")
            spread = typical  # its repeats' spread is not recorded: assume the run's typical noise
        else:
            other = rows.get((key[0], name, *key[2:]))
            if other is None or not is_ok(other):
                continue
            seconds = num(other, "solve_time_median")
            spread = max(noise(other), typical)
        if seconds > 0:  # False for NaN too
            found[name] = Timing(seconds, spread)
    return found


def run_speeds(
    keys: list[tuple], base_rows: Rows, cur_rows: Rows, options: CompareOptions
) -> dict[tuple, RunSpeed | str]:
    """Every case's change in one current run, or why it could not be timed."""
    names = reference_names(options, {**base_rows, **cur_rows})
    b_typical, c_typical = typical_noise(base_rows), typical_noise(cur_rows)
    out: dict[tuple, RunSpeed | str] = {}
    pending: dict[tuple, tuple[dict[str, Timing], dict[str, Timing], dict[str, float]]] = {}
    changes: dict[str, list[float]] = {}
    for key in keys:
        base, cur = base_rows[key], cur_rows.get(key)
        if cur is None:
            out[key] = "not in this run"
            continue
        if not (is_ok(base) and is_ok(cur)):
            out[key] = "not timed (outcome not ok)"
            continue
        if not (num(base, "solve_time_median") > 0 and num(cur, "solve_time_median") > 0):
            out[key] = "no solve time"
            continue
        b_refs = reference_times(key, base_rows, names, b_typical)
        c_refs = reference_times(key, cur_rows, names, c_typical)
        shared = [name for name in names if name in b_refs and name in c_refs]
        if not shared:
            out[key] = "no reference time in both tables"
            continue
        ref_logs = {name: math.log(c_refs[name].seconds / b_refs[name].seconds) for name in shared}
        for name, change in ref_logs.items():
            changes.setdefault(name, []).append(change)
        pending[key] = ({n: b_refs[n] for n in shared}, {n: c_refs[n] for n in shared}, ref_logs)

    machine = {name: statistics.median(values) for name, values in changes.items() if len(values) >= 3}
    for key, (b_refs, c_refs, ref_logs) in pending.items():
        base, cur = base_rows[key], cur_rows[key]
        factors = [machine.get(name, change) for name, change in ref_logs.items()]
        disagreement = (max(factors) - min(factors)) / 2  # 0 with a single reference
        b_time, c_time = num(base, "solve_time_median"), num(cur, "solve_time_median")
        out[key] = RunSpeed(
            log_change=math.log(c_time / b_time) - statistics.fmean(factors),
            baseline_ratio=b_time / _geomean([t.seconds for t in b_refs.values()]),
            base_noise=max(noise(base), b_typical) + statistics.fmean(t.noise for t in b_refs.values()),
            cur_noise=max(noise(cur), c_typical) + statistics.fmean(t.noise for t in c_refs.values()) + disagreement,
            references="+".join(b_refs),
        )
    return out


def pooled_estimate(speeds: Sequence[RunSpeed], promise: float, noise_k: float) -> Estimate:
    """One case over several current runs: the mean change; the current side's noise / sqrt(runs)."""
    log_change = statistics.fmean(s.log_change for s in speeds)
    current = statistics.fmean(s.cur_noise for s in speeds) / math.sqrt(len(speeds))
    return Estimate(log_change, noise_k * (speeds[0].base_noise + current), promise)


def _geomean(values: Sequence[float]) -> float:
    return math.exp(sum(math.log(v) for v in values) / len(values))
