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
    # What the QP solver leaves when it stops early, e.g. on a false "non-convex" verdict (seen on
    # problems whose Hessian has eigenvalues >= 0.1; docs/solvers.md).
    "kNotset": Status.NUMERICAL_ERROR,
}
_ERRORS = {
    "kNotset": "HiGHS model status kNotset: its QP solver stopped without a solution",
    "kSolveError": "HiGHS model status kSolveError: its QP solver's answer failed HiGHS's own feasibility check",
}
# HiGHS rejects feasibility tolerances below this.
_MIN_TOL = 1e-10


class HiGHSAdapter(LoopedAdapter):
    name = "highs"
    package = "highspy"
    capabilities = Capabilities(batched=False, differentiable=False)
    options_note = (
        "HiGHS's QP solver adds `qp_regularization_value` times the identity to the Hessian "
        "(default 1e-7), which moves the dual residual and gap by about that times |z| (and |z|²): "
        "at eps / 100, 4% of the default suite's optnet_random answers at mid failed the gap test; "
        "at eps / 10^4 none does. What remains is the QP solver's own failures (0.8% of the default "
        "suite's problems at mid, see 'Limits measured'): model status kNotset, its log saying "
        "\"Non-convex\" on Hessians whose eigenvalues are all ≥ 0.1, or kSolveError (\"claims "
        "optimality, but with primal infeasibilities\" of 6e-5). A solve without a valid solution "
        "returns no z: it used to return the solver's starting point, whose primal residual of 17 "
        "topped an earlier report."
    )

    def options(self, tolerance: Tolerance, time_limit: float) -> dict[str, Any]:
        tol = max(tolerance.eps, _MIN_TOL)
        opts: dict[str, Any] = {
            "output_flag": False,
            "primal_feasibility_tolerance": tol,
            "dual_feasibility_tolerance": tol,
            "ipm_optimality_tolerance": max(tolerance.eps, 1e-12),
            "qp_iteration_limit": 100_000,
            # Hessian regularization shifts the dual residual and gap (options_note).
            "qp_regularization_value": min(1e-7, tolerance.eps * 1e-4),
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
            int(info.qp_iteration_count), int(info.simplex_iteration_count), int(info.ipm_iteration_count), 0
        )
        error = _ERRORS.get(label, "" if label in _STATUS else label)
        if not solution.value_valid:
            # No solution: col_value is whatever the solver started from, not an answer to judge.
            return OneResult(status, iterations=iterations, error=error)
        # HiGHS row duals are <= 0 at an active upper bound of a minimization: negate for lam/nu.
        y = -np.asarray(solution.row_dual, dtype=np.float64) if solution.dual_valid else None
        return OneResult(
            status, z=np.asarray(solution.col_value, dtype=np.float64),
            lam=None if y is None else y[:m], nu=None if y is None else y[m:], iterations=iterations, error=error,
        )

