"""Speed from interleaved tables of one build each: the judged solver's ratio to reference solvers
timed in turn with it, compared between the two tables.

An interleaved session of one build (``qpbench compare --record``, and the unpaired check's own
measurement) times the judged solver and its reference solvers case by case, in turn, so entry i
of their ``solve_times`` is one pair, measured at the same moment of load. The median of the
pairs' log-ratios is the in-run ratio; its standard error comes from the pairs' scatter. Such a
ratio moves little with load, but it is compared with a table measured at another time (and
maybe another machine), so the check keeps the unpaired promise. The current side is measured in
several sessions (separate processes); their spread counts in the interval (``session_change``).
"""

from __future__ import annotations

import math
import statistics

from qpbench.regression.decision import Estimate
from qpbench.regression.paired import log_ratios, median_and_error, pairing_of
from qpbench.regression.rows import Row, Rows, is_ok


def session_references(key: tuple, rows: Rows, judged: set[str]) -> dict[str, Row]:
    """The case's other solvers' rows timed in the same session as its judged row, by solver."""
    row = rows[key]
    session = pairing_of(row)
    if not session or not is_ok(row):
        return {}
    found = {}
    for other_key, other in rows.items():
        same_case = other_key[0] == key[0] and other_key[2:] == key[2:]
        if same_case and other_key[1] not in judged and pairing_of(other) == session and is_ok(other):
            found[other_key[1]] = other
    return found


def is_interleaved(keys: list[tuple], rows: Rows, judged: set[str]) -> bool:
    return bool(keys) and all(session_references(key, rows, judged) for key in keys if is_ok(rows[key]))


def interleaved_estimate(
    key: tuple, base_rows: Rows, runs: list[Rows], judged: set[str], wanted: list[str] | None,
    promise: float, z: float, min_pairs: int,
) -> tuple[Estimate | None, str]:
    """The case's change of its in-run ratio to the references both tables timed with it."""
    base_refs = session_references(key, base_rows, judged)
    run_refs = [session_references(key, rows, judged) for rows in runs]
    names = [n for n in sorted(base_refs) if all(n in refs for refs in run_refs) and (wanted is None or n in wanted)]
    if not names:
        return None, "no reference solver timed with it in both tables"
    changes, variances = [], []
    for name in names:
        before = log_ratios(base_refs[name], base_rows[key])
        sessions = [log_ratios(refs[name], rows[key]) for rows, refs in zip(runs, run_refs, strict=True)]
        if min(len(before), *(len(s) for s in sessions)) < min_pairs:
            return None, f"not timed (fewer than {min_pairs} interleaved pairs)"
        change, variance = session_change(before, sessions)
        changes.append(change)
        variances.append(variance)
    # The references' ratios share the judged solver's timings, so their errors are not independent:
    # the mean variance, not the variance of the mean.
    half_width = z * math.sqrt(statistics.fmean(variances))
    sessions_note = f", {len(runs)} sessions" if len(runs) > 1 else ""
    return Estimate(statistics.fmean(changes), half_width, promise), f"vs {'+'.join(names)} interleaved{sessions_note}"


def session_change(before: list[float], sessions: list[list[float]]) -> tuple[float, float]:
    """The change of the median in-run log-ratio from the baseline's session to the current
    sessions' (their mean), and its variance.

    A session (one measurement process) can carry a shift of its own that its pairs' scatter does
    not show (measured: one case's ratio 1.6x off in one session of an unchanged solver while the
    other cases read 0.98x to 1.05x), so with several current sessions the variance of their mean
    is at least the spread between them over their number, not only their pairs' scatter.
    """
    b_center, b_error = median_and_error(before)
    fits = [median_and_error(s) for s in sessions]
    centers = [center for center, _ in fits]
    within = statistics.fmean(error**2 for _, error in fits) / len(fits)
    between = statistics.variance(centers) / len(centers) if len(centers) > 1 else 0.0
    return statistics.fmean(centers) - b_center, b_error**2 + max(within, between)
