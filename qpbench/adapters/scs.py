"""SCS (splitting conic solver) called directly: one problem at a time."""

from __future__ import annotations

from typing import Any

import numpy as np

from qpbench.adapters._common import LoopedAdapter, OneResult, ProblemArrays, conic_rows, time_limit_option
from qpbench.adapters.base import Capabilities, Tolerance
from qpbench.status import Status

# SCS status_val codes (scs/include/glbopts.h).
_STATUS = {
    1: Status.SOLVED,
    2: Status.MAX_ITER,  # solved/inaccurate
    -1: Status.DUAL_INFEASIBLE,  # unbounded
    -6: Status.DUAL_INFEASIBLE,  # unbounded/inaccurate
    -2: Status.PRIMAL_INFEASIBLE,
    -7: Status.PRIMAL_INFEASIBLE,  # infeasible/inaccurate
    -3: Status.UNKNOWN,  # indeterminate
    -4: Status.NUMERICAL_ERROR,  # failed
    -5: Status.TIME_LIMIT,  # sigint
}


class SCSAdapter(LoopedAdapter):
    name = "scs"
    package = "scs"
    capabilities = Capabilities(batched=False, differentiable=False, needs_constraints=True)
    options_note = (
        "Absolute accuracy only (`eps_rel = 0`); `eps_infeas = 1e-9` so that an infeasibility "
        "certificate is not accepted early."
    )

    def options(self, tolerance: Tolerance, time_limit: float) -> dict[str, Any]:
        opts: dict[str, Any] = {
            "eps_abs": tolerance.eps,
            "eps_rel": 0.0,
            "eps_infeas": 1e-9,
            "max_iters": 200_000,
            "verbose": False,
        }
        opts.update(time_limit_option("time_limit_secs", time_limit))
        return opts

    def prepare_one(self, data: ProblemArrays, options: dict[str, Any]) -> Any:
        import scipy.sparse as sp
        import scs

        M, rhs = conic_rows(data)
        problem = {
            "P": sp.triu(sp.csc_matrix(data.Q), format="csc"),
            "A": sp.csc_matrix(M),
            "b": rhs,
            "c": data.p,
        }
        cone = {"z": data.k, "l": data.m}
        return scs.SCS(problem, cone, **options), data.k

    def solve_one(self, item: Any, options: dict[str, Any]) -> OneResult:
        solver, k = item
        sol = solver.solve(warm_start=False)
        info = sol["info"]
        status = _STATUS.get(int(info["status_val"]), Status.UNKNOWN)
        y = np.asarray(sol["y"], dtype=np.float64)  # Px + c + M'y = 0, y >= 0 on the cone 'l'
        x = np.asarray(sol["x"], dtype=np.float64)
        return OneResult(status, z=x, lam=y[k:], nu=y[:k], iterations=int(info["iter"]))
