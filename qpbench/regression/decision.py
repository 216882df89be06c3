"""The three verdicts of a speed measurement, from an estimated change and its uncertainty.

A check promises to detect a slowdown of a given size S (``Promise``). An estimate of the change
is a log-ratio with the half-width of its interval (about 95 %, one-sided 97.5 % each way). With
the limit L = sqrt(S), the geometric midpoint between "no change" and S:

* **regression**: the estimate is above L and its interval excludes no change;
* **pass**: the estimate is at most L and its interval excludes S;
* **inconclusive**: neither, which happens only when the half-width exceeds ln S / 2: the noise
  is too large to tell no change from a slowdown of S.

So no limit is ever wider than the promise: the regression limit is sqrt(S) < S, and a pass
needs the measured interval to exclude S. When the noise is small enough (half-width at most
ln S / 2), the verdict is the plain comparison with L. A 2x slowdown can be inconclusive on a very
noisy machine, but never passes under a promise of 2x or less. See ``docs/regression.md``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum


class Verdict(StrEnum):
    PASS = "pass"
    REGRESSION = "regression"
    INCONCLUSIVE = "inconclusive"


@dataclass(frozen=True)
class Promise:
    """The smallest slowdowns a check promises to detect: uniform over the suite, and in any
    single case (a single case is noisier than the suite's mean, so its promise is larger)."""

    suite: float
    case: float

    def __post_init__(self) -> None:
        for name in ("suite", "case"):
            if not getattr(self, name) > 1.0:
                raise ValueError(f"promise {name} must be a slowdown factor > 1, got {getattr(self, name)!r}")

    def describe(self) -> str:
        return (
            f"detects a slowdown of {self.suite:g}x of the whole suite (every case) and of {self.case:g}x in "
            f"any single case: it reports a regression above {limit(self.suite):.3f}x "
            f"({limit(self.case):.3f}x for a single case), and passes only when the measured interval "
            f"excludes {self.suite:g}x ({self.case:g}x)"
        )


# Interleaved builds cancel machine load, so their paired ratios resolve 1.25x; a comparison with
# a committed table measured at another time (and maybe elsewhere) needs a larger one.
PAIRED_PROMISE = Promise(suite=1.25, case=1.5)
UNPAIRED_PROMISE = Promise(suite=1.5, case=2.0)


def limit(promise: float) -> float:
    """The regression limit for a promised detectable slowdown: their geometric midpoint with 1."""
    return math.sqrt(promise)


@dataclass(frozen=True)
class Estimate:
    """A measured change (current / baseline time) with its interval, judged against a promise."""

    log_change: float
    half_width: float  # of the interval, in log units (inf: nothing is known)
    promise: float

    @property
    def change(self) -> float:
        return math.exp(self.log_change)

    @property
    def low(self) -> float:
        return math.exp(self.log_change - self.half_width)

    @property
    def high(self) -> float:
        return math.exp(self.log_change + self.half_width) if math.isfinite(self.half_width) else math.inf

    @property
    def limit(self) -> float:
        return limit(self.promise)

    @property
    def verdict(self) -> Verdict:
        above = self.log_change > math.log(self.limit)
        if above and self.log_change - self.half_width > 0:
            return Verdict.REGRESSION
        if not above and self.log_change + self.half_width <= math.log(self.promise):
            return Verdict.PASS
        return Verdict.INCONCLUSIVE

    def describe(self) -> str:
        return f"{self.change:.3f}x [{self.low:.3f}x, {self.high:.3f}x]"


MIN_HALF_WIDTH = 0.005  # no case is trusted to better than 0.5 %, so none can carry the mean alone


def combined(estimates: Sequence[Estimate], promise: float) -> Estimate | None:
    """The noise-weighted mean of independent estimates (weights 1 / half-width^2), as the
    estimate of a change common to all of them; its half-width is 1 / sqrt(sum of weights)."""
    usable = [e for e in estimates if math.isfinite(e.half_width)]
    if not usable:
        return None
    weights = [1.0 / max(e.half_width, MIN_HALF_WIDTH) ** 2 for e in usable]
    total = sum(weights)
    mean = sum(w * e.log_change for w, e in zip(weights, usable, strict=True)) / total
    return Estimate(mean, 1.0 / math.sqrt(total), promise)


def worst(verdicts: Sequence[Verdict]) -> Verdict:
    """A regression anywhere fails; otherwise anything unresolved leaves it inconclusive."""
    if Verdict.REGRESSION in verdicts:
        return Verdict.REGRESSION
    if Verdict.INCONCLUSIVE in verdicts:
        return Verdict.INCONCLUSIVE
    return Verdict.PASS
