"""The settings of a comparison; every default is explained in ``docs/regression.md``."""

from __future__ import annotations

from dataclasses import dataclass

from qpbench.regression.decision import PAIRED_PROMISE, UNPAIRED_PROMISE, Promise

CALIBRATION = "calibration"  # the reference name of the calibration kernel (calibration_time)
AUTO = "auto"  # references: the calibration kernel and every solver not judged


@dataclass(frozen=True)
class CompareOptions:
    solvers: tuple[str, ...] = ("inhouse",)  # whose rows are judged (others may serve as references)
    references: tuple[str, ...] = (AUTO,)  # unpaired speed references: "calibration", solver names, "auto"
    speed: bool = True  # False: judge accuracy and work counts only
    # The detectable slowdowns promised, of the suite and of a single case (None: the mode's own).
    promise_suite: float | None = None
    promise_case: float | None = None
    z: float = 2.0  # paired: interval half-width in standard errors of the median paired ratio
    min_pairs: int = 8  # paired: fewer pairs than this leave a case untimed
    noise_k: float = 1.5  # unpaired: interval half-width in multiples of the summed log-noise
    success_drop: float = 0.0  # allowed drop of success_rate / correct_rate (absolute)
    residual_growth: float = 10.0  # growth allowed for a residual already above tolerance
    gradient_tolerance: float = 1e-4  # relative gradient error that counts as wrong
    iteration_margin: float = 0.25  # relative growth of mean/max iterations allowed ...
    iteration_slack: float = 2.0  # ... plus this many iterations (small counts are jumpy)
    work_tolerance: float = 0.0  # relative growth of a work count allowed (deterministic: none)
    machine: str | None = None  # of a table with rows of several machines, compare this one's only

    def __post_init__(self) -> None:
        if not self.solvers:
            raise ValueError("solvers must name at least one solver")
        for name in ("z", "noise_k"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)!r}")
        for name in ("iteration_margin", "iteration_slack", "work_tolerance"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        if not self.min_pairs >= 2:
            raise ValueError(f"min_pairs must be >= 2, got {self.min_pairs!r}")
        if not 0 <= self.success_drop <= 1:
            raise ValueError(f"success_drop must be in [0, 1], got {self.success_drop!r}")
        for name in ("promise_suite", "promise_case"):
            value = getattr(self, name)
            if value is not None and not value > 1:
                raise ValueError(f"{name} must be a slowdown factor > 1, got {value!r}")
        if not self.residual_growth >= 1:
            raise ValueError(f"residual_growth must be >= 1, got {self.residual_growth!r}")
        if self.speed and not self.references:
            raise ValueError("references must name at least one speed reference when speed is judged")

    def promise_for(self, paired: bool) -> Promise:
        default = PAIRED_PROMISE if paired else UNPAIRED_PROMISE
        return Promise(suite=self.promise_suite or default.suite, case=self.promise_case or default.case)
