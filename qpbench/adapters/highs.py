"""HiGHS (highspy): convex QPs by its active-set QP solver, LPs by simplex/IPM; one at a time."""

from __future__ import annotations

from typing import Any

import numpy as np

from qpbench.adapters._common import INFINITY, LoopedAdapter, OneResult, ProblemArrays, time_limit_option
from qpbench.adapters.base import Capabilities, Tolerance
from qpbench.status import Status

_STATUS = {
    "kOptimal": Status.SOLVED,
    "kInfeasible": Status.PRIMAL_INFEASIBLE,
    "kUnbounded": Status.DUAL_INFEASIBLE,
    "kUnboundedOrInfeasible": Status.DUAL_INFEASIBLE,
    "kTimeLimit": Status.TIME_LIMIT,
    "kIterationLimit": Status.MAX_ITER,
    "kSolveError": Status.NUMERICAL_ERROR,
}
# HiGHS rejects feasibility tolerances below this.
_MIN_TOL = 1e-10


class HiGHSAdapter(LoopedAdapter):
    name = "highs"
    package = "highspy"
    capabilities = Capabilities(batched=False, differentiable=False)

    def options(self, tolerance: Tolerance, time_limit: float) -> dict[str, Any]:
        tol = max(tolerance.eps, _MIN_TOL)
        opts: dict[str, Any] = {
            "output_flag": False,
            "primal_feasibility_tolerance": tol,
            "dual_feasibility_tolerance": tol,
            "ipm_optimality_tolerance": max(tolerance.eps, 1e-12),
            "qp_iteration_limit": 100_000,
            # The QP solver regularizes the Hessian by this much (default 1e-7), which caps the
            # reachable dual accuracy; keep it below the requested tolerance.
            "qp_regularization_value": min(1e-7, tolerance.eps * 1e-2),
        }
        opts.update(time_limit_option("time_limit", time_limit))
        return opts

    def prepare_one(self, data: ProblemArrays, options: dict[str, Any]) -> Any:
        import highspy
        import scipy.sparse as sp

        model = highspy.HighsModel()
        lp = model.lp_
        lp.num_col_ = data.n
        lp.num_row_ = data.m + data.k
        lp.col_cost_ = data.p
        lp.col_lower_ = np.full(data.n, -INFINITY)
        lp.col_upper_ = np.full(data.n, INFINITY)
        lp.row_lower_ = np.concatenate([np.full(data.m, -INFINITY), data.b])
        lp.row_upper_ = np.concatenate([data.h, data.b])
        M = sp.csc_matrix(np.vstack([data.G, data.A]))
        lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
        lp.a_matrix_.start_ = M.indptr
        lp.a_matrix_.index_ = M.indices
        lp.a_matrix_.value_ = M.data
        lp.a_matrix_.num_col_ = data.n
        lp.a_matrix_.num_row_ = data.m + data.k
        lower = sp.csc_matrix(np.tril(data.Q))  # HiGHS wants the lower triangle, column-wise
        if lower.nnz:
            model.hessian_.dim_ = data.n
            model.hessian_.format_ = highspy.HessianFormat.kTriangular
            model.hessian_.start_ = lower.indptr
            model.hessian_.index_ = lower.indices
            model.hessian_.value_ = lower.data
        solver = highspy.Highs()
        for key, value in options.items():
            solver.setOptionValue(key, value)
        solver.passModel(model)
        return solver, data.m

    def solve_one(self, item: Any, options: dict[str, Any]) -> OneResult:
        solver, m = item
        solver.clearSolver()  # forget the previous solve so that every repeat does the same work
        solver.run()
        label = solver.getModelStatus().name
        status = _STATUS.get(label, Status.UNKNOWN)
        solution = solver.getSolution()
        info = solver.getInfo()
        iterations = max(
            int(info.qp_iteration_count), int(info.simplex_iteration_count), int(info.ipm_iteration_count)
        )
        # HiGHS row duals are <= 0 at an active upper bound of a minimization: negate for lam/nu.
        y = -np.asarray(solution.row_dual, dtype=np.float64)
        result = OneResult(status, z=np.asarray(solution.col_value, dtype=np.float64), lam=y[:m], nu=y[m:],
                           iterations=iterations)
        if status is Status.UNKNOWN:
            result.error = label
        return result

