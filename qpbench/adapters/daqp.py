"""DAQP (dual active set, dense): one problem at a time."""

from __future__ import annotations

from typing import Any

import numpy as np

from qpbench.adapters._common import INFINITY, LoopedAdapter, OneResult, ProblemArrays, conic_rows, time_limit_option
from qpbench.adapters.base import Capabilities, Tolerance
from qpbench.status import Status

# DAQP exit flags (daqp/include/constants.h).
_STATUS = {
    1: Status.SOLVED,
    2: Status.SOLVED,  # soft-optimal: only soft constraints violated (none are used here)
    -1: Status.PRIMAL_INFEASIBLE,
    -2: Status.NUMERICAL_ERROR,  # cycling
    -3: Status.DUAL_INFEASIBLE,  # unbounded
    -4: Status.MAX_ITER,
    -5: Status.NUMERICAL_ERROR,  # nonconvex
    -6: Status.NUMERICAL_ERROR,  # overdetermined initial active set
    -7: Status.TIME_LIMIT,
}
_EQUALITY = 5  # DAQP 'sense' flag: active + immutable


class DAQPAdapter(LoopedAdapter):
    name = "daqp"
    package = "daqp"
    # Singular Hessians go through DAQP's proximal-point regularization, which does not reach the
    # suite's tolerances reliably; declare positive definite Q only.
    capabilities = Capabilities(batched=False, differentiable=False, needs_pd_q=True, lp=False)
    options_note = (
        "`primal_tol` bounds the constraint violation; DAQP's `dual_tol` (default 1e-12) is already "
        "tighter than every level. Singular Hessians are declared unsupported: DAQP's proximal-point "
        "regularization does not reach the suite's tolerances reliably."
    )

    def options(self, tolerance: Tolerance, time_limit: float) -> dict[str, Any]:
        # DAQP's primal_tol bounds constraint violation; its dual_tol (default 1e-12) is already
        # stricter than every level, and an active-set method is exact on the dual otherwise.
        opts: dict[str, Any] = {"primal_tol": tolerance.eps, "iter_limit": 10_000}
        opts.update(time_limit_option("time_limit", time_limit))
        return opts

    def prepare_one(self, data: ProblemArrays, options: dict[str, Any]) -> Any:
        M, upper = conic_rows(data)
        lower = np.concatenate([data.b, np.full(data.m, -INFINITY)])
        sense = np.concatenate([np.full(data.k, _EQUALITY), np.zeros(data.m)]).astype(np.int32)
        return data, M, upper, lower, sense

    def solve_one(self, item: Any, options: dict[str, Any]) -> OneResult:
        import daqp

        data, M, upper, lower, sense = item
        x, _, exitflag, info = daqp.solve(data.Q, data.p, M, upper, lower, sense, **options)
        status = _STATUS.get(int(exitflag), Status.UNKNOWN)
        # DAQP's multiplier is positive on an active upper bound, as lam and nu are.
        y = np.asarray(info["lam"], dtype=np.float64)
        return OneResult(status, z=np.asarray(x, dtype=np.float64), lam=y[data.k :], nu=y[: data.k],
                         iterations=int(info["iterations"]))
