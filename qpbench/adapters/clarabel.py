"""Clarabel (interior point, conic): one problem at a time; setup builds the solver object."""

from __future__ import annotations

from typing import Any

import numpy as np

from qpbench.adapters._common import LoopedAdapter, OneResult, ProblemArrays, conic_rows, time_limit_option
from qpbench.adapters.base import Capabilities, Tolerance
from qpbench.status import Status

# Clarabel statuses by name (str(status)); qpbench.reference maps "AlmostSolved" differently.
STATUS = {
    "Solved": Status.SOLVED,
    "AlmostSolved": Status.MAX_ITER,  # met only the reduced tolerances
    "PrimalInfeasible": Status.PRIMAL_INFEASIBLE,
    "AlmostPrimalInfeasible": Status.PRIMAL_INFEASIBLE,
    "DualInfeasible": Status.DUAL_INFEASIBLE,
    "AlmostDualInfeasible": Status.DUAL_INFEASIBLE,
    "MaxIterations": Status.MAX_ITER,
    "MaxTime": Status.TIME_LIMIT,
    "NumericalError": Status.NUMERICAL_ERROR,
    "InsufficientProgress": Status.NUMERICAL_ERROR,
}


class ClarabelAdapter(LoopedAdapter):
    name = "clarabel"
    package = "clarabel"
    capabilities = Capabilities(batched=False, differentiable=False)
    options_note = (
        "Clarabel stops on an absolute or a relative gap; the relative test is off (`tol_gap_rel = 0`) "
        "because the suite's gap test is absolute. Its `tol_feas` is relative to the data's norms, so "
        "at low 2 of 512 default-suite answers had dual residuals above 1e-3."
    )

    def options(self, tolerance: Tolerance, time_limit: float) -> dict[str, Any]:
        eps = tolerance.eps
        # Clarabel stops on an absolute OR a relative gap; the suite's gap check is absolute, so
        # the relative test is switched off (as eps_rel = 0 for OSQP, SCS, PIQP, ProxQP).
        opts: dict[str, Any] = {
            "tol_gap_abs": eps,
            "tol_gap_rel": 0.0,
            "tol_feas": eps,
            "tol_infeas_abs": eps,
            "tol_infeas_rel": eps,
            "tol_ktratio": min(1e-6, eps),
            "max_iter": 200,
            "verbose": False,
        }
        opts.update(time_limit_option("time_limit", time_limit))
        return opts

    def prepare_one(self, data: ProblemArrays, options: dict[str, Any]) -> Any:
        import clarabel

        settings = clarabel.DefaultSettings()
        for key, value in options.items():
            setattr(settings, key, value)
        return clarabel_solver(data, settings), data.k

    def solve_one(self, item: Any, options: dict[str, Any]) -> OneResult:
        solver, k = item
        sol = solver.solve()
        status = STATUS.get(str(sol.status), Status.UNKNOWN)
        # Clarabel's dual z satisfies Pz + q + M'z = 0 with z >= 0 on the nonnegative cone,
        # which is exactly QPBatch's (nu, lam) ordering after the split.
        y = np.asarray(sol.z, dtype=np.float64)
        return OneResult(
            status, z=np.asarray(sol.x, dtype=np.float64), lam=y[k:], nu=y[:k], iterations=int(sol.iterations)
        )


def clarabel_solver(data: ProblemArrays, settings: Any) -> Any:  # -> clarabel.DefaultSolver
    """A Clarabel solver for one problem: rows [A; G] with cones [zero(k), nonnegative(m)].

    Clarabel solves min 1/2 x'Px + q'x s.t. Mx + s = c, s in K, with dual y in K* and
    P x + q + M'y = 0, which is QPBatch's convention with y = [nu; lam].
    """
    import clarabel
    import scipy.sparse as sp

    M, rhs = conic_rows(data)  # equalities first (zero cone), then G z + s = h with s >= 0
    cones = []
    if data.k:
        cones.append(clarabel.ZeroConeT(data.k))
    if data.m:
        cones.append(clarabel.NonnegativeConeT(data.m))
    P = sp.triu(sp.csc_matrix(data.Q), format="csc")
    return clarabel.DefaultSolver(P, data.p, sp.csc_matrix(M), rhs, cones, settings)
