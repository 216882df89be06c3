"""OSQP (operator splitting, ADMM): one problem at a time; setup builds the solver object."""

from __future__ import annotations

from typing import Any

import numpy as np

from qpbench.adapters._common import LoopedAdapter, OneResult, ProblemArrays, time_limit_option
from qpbench.adapters.base import Capabilities, Tolerance
from qpbench.status import Status

_STATUS = {
    "OSQP_SOLVED": Status.SOLVED,
    "OSQP_SOLVED_INACCURATE": Status.MAX_ITER,  # stopped short of the requested accuracy
    "OSQP_PRIMAL_INFEASIBLE": Status.PRIMAL_INFEASIBLE,
    "OSQP_PRIMAL_INFEASIBLE_INACCURATE": Status.PRIMAL_INFEASIBLE,
    "OSQP_DUAL_INFEASIBLE": Status.DUAL_INFEASIBLE,
    "OSQP_DUAL_INFEASIBLE_INACCURATE": Status.DUAL_INFEASIBLE,
    "OSQP_MAX_ITER_REACHED": Status.MAX_ITER,
    "OSQP_TIME_LIMIT_REACHED": Status.TIME_LIMIT,
    "OSQP_NON_CVX": Status.NUMERICAL_ERROR,
}


def stacked_rows(data: ProblemArrays) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """[G; A] with bounds l <= [G; A] z <= u (OSQP's l <= Az <= u form)."""
    M = np.vstack([data.G, data.A])
    lower = np.concatenate([np.full(data.m, -np.inf), data.b])
    upper = np.concatenate([data.h, data.b])
    return M, lower, upper


class OSQPAdapter(LoopedAdapter):
    name = "osqp"
    package = "osqp"
    capabilities = Capabilities(batched=False, differentiable=False)
    options_note = (
        "Absolute accuracy only (`eps_rel = 0`), as the suite's tests are absolute; polishing on (an "
        "active-set refinement of the ADMM answer); no warm start, so every repeat does the same work."
    )

    def options(self, tolerance: Tolerance, time_limit: float) -> dict[str, Any]:
        # Absolute accuracy only (eps_rel = 0), as the suite's success check is absolute.
        # No warm start, so every repeat of solve() does the same work.
        opts: dict[str, Any] = {
            "eps_abs": tolerance.eps,
            "eps_rel": 0.0,
            "max_iter": 200_000,
            "polishing": True,
            "warm_starting": False,
            "verbose": False,
        }
        opts.update(time_limit_option("time_limit", time_limit))
        return opts

    def prepare_one(self, data: ProblemArrays, options: dict[str, Any]) -> Any:
        import osqp
        import scipy.sparse as sp

        M, lower, upper = stacked_rows(data)
        solver = osqp.OSQP()
        solver.setup(
            P=sp.triu(sp.csc_matrix(data.Q), format="csc"),
            q=data.p,
            A=sp.csc_matrix(M),
            l=lower,
            u=upper,
            **options,
        )
        return solver, data.m

    def solve_one(self, item: Any, options: dict[str, Any]) -> OneResult:
        import osqp

        solver, m = item
        res = solver.solve(raise_error=False)
        label = osqp.SolverStatus(res.info.status_val).name
        status = _STATUS.get(label, Status.UNKNOWN)
        # OSQP's y multiplies [G; A]: y >= 0 on active upper bounds matches lam; equality rows give nu.
        y = np.asarray(res.y, dtype=np.float64)
        z = None if res.x is None else np.asarray(res.x, dtype=np.float64)
        return OneResult(status, z=z, lam=y[:m], nu=y[m:], iterations=int(res.info.iter))
