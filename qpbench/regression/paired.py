"""Speed from paired tables: the two builds' solves of a case, measured alternately in one job.

Entry i of the two tables' ``solve_times`` is one pair (``qpbench.paired``). Each pair's log-ratio
ln(candidate / baseline) sees the same machine state on both sides, so what the machine did
cancels; what is left scatters around the true change with heavy tails (a solve interrupted on
one side). The case's change is the median of its log-ratios; its standard error is the median's,
1.2533 sigma / sqrt(n), with sigma estimated robustly as 1.4826 times the median absolute deviation.
"""

from __future__ import annotations

import math
import statistics

from qpbench.regression.decision import Estimate
from qpbench.regression.rows import Row, Rows, is_ok, missing, times

MEDIAN_EFFICIENCY = 1.2533  # se of a sample median / se of the mean, for normal scatter
MAD_TO_SIGMA = 1.4826


def pairing_of(row: Row) -> str:
    value = row.get("pairing")
    return "" if missing(value) else str(value)


def are_paired(keys: list[tuple], base_rows: Rows, cur_rows: Rows) -> bool:
    """Both tables come from one paired session: every compared row names the same session."""
    sessions = {pairing_of(base_rows[k]) for k in keys} | {pairing_of(cur_rows[k]) for k in keys}
    return len(sessions) == 1 and "" not in sessions


def log_ratios(base: Row, cur: Row) -> list[float]:
    pairs = zip(times(base), times(cur), strict=False)  # a solve that failed ends both series
    return [math.log(c / b) for b, c in pairs if b > 0 and c > 0]


def median_and_error(values: list[float]) -> tuple[float, float]:
    """The sample median and its standard error (robust: from the median absolute deviation)."""
    center = statistics.median(values)
    spread = MAD_TO_SIGMA * statistics.median(abs(v - center) for v in values)
    return center, MEDIAN_EFFICIENCY * spread / math.sqrt(len(values))


def paired_estimate(base: Row, cur: Row, promise: float, z: float, min_pairs: int) -> tuple[Estimate | None, str]:
    """The case's change with its interval, or None and why not."""
    if not (is_ok(base) and is_ok(cur)):
        return None, "not timed (outcome not ok)"
    ratios = log_ratios(base, cur)
    if len(ratios) < min_pairs:
        return None, f"not timed ({len(ratios)} pairs, fewer than {min_pairs})"
    center, error = median_and_error(ratios)
    return Estimate(center, z * error, promise), f"{len(ratios)} pairs"
