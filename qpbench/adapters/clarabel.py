"""Clarabel (interior point, conic): one problem at a time; setup builds the solver object."""

from __future__ import annotations

from typing import Any

import numpy as np

from qpbench.adapters._common import LoopedAdapter, OneResult, ProblemArrays, conic_rows, finite_or_none
from qpbench.adapters.base import Capabilities, Tolerance
from qpbench.status import Status

_STATUS = {
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
        if finite_or_none(time_limit) is not None:
            opts["time_limit"] = float(time_limit)
        return opts

    def prepare_one(self, data: ProblemArrays, options: dict[str, Any]) -> Any:
        import clarabel
        import scipy.sparse as sp

        M, rhs = conic_rows(data)  # equalities first (zero cone), then G z + s = h with s >= 0
        cones = []
        if data.k:
            cones.append(clarabel.ZeroConeT(data.k))
        if data.m:
            cones.append(clarabel.NonnegativeConeT(data.m))
        settings = clarabel.DefaultSettings()
        for key, value in options.items():
            setattr(settings, key, value)
        P = sp.triu(sp.csc_matrix(data.Q), format="csc")
        solver = clarabel.DefaultSolver(P, data.p, sp.csc_matrix(M), rhs, cones, settings)
        return solver, data.k

    def solve_one(self, item: Any, options: dict[str, Any]) -> OneResult:
        solver, k = item
        sol = solver.solve()
        status = _STATUS.get(str(sol.status), Status.UNKNOWN)
        # Clarabel's dual z satisfies Pz + q + M'z = 0 with z >= 0 on the nonnegative cone,
        # which is exactly QPBatch's (nu, lam) ordering after the split.
        y = np.asarray(sol.z, dtype=np.float64)
        return OneResult(
            status, z=np.asarray(sol.x, dtype=np.float64), lam=y[k:], nu=y[:k], iterations=int(sol.iterations)
        )
