"""Gradient checks: each differentiable solver's gradients against central finite differences.

See ``docs/gradcheck.md`` for the method (exact active-set forward solves, flagging of points
where the solution map is not differentiable, the sum vs mean convention for shared tensors).
"""

from qpbench.gradcheck.check import FULL_MAX_N, analytic_gradients, check_gradients, loss_weights
from qpbench.gradcheck.finite_diff import FiniteDifferences, Flag, finite_differences
from qpbench.gradcheck.report import GradCheckReport

__all__ = [
    "FULL_MAX_N",
    "FiniteDifferences",
    "Flag",
    "GradCheckReport",
    "analytic_gradients",
    "check_gradients",
    "finite_differences",
    "loss_weights",
]
