"""PIQP (proximal interior point), dense interface: one problem at a time."""

from __future__ import annotations

from typing import Any

import numpy as np

from qpbench.adapters._common import LoopedAdapter, OneResult, ProblemArrays
from qpbench.adapters.base import Capabilities, Tolerance
from qpbench.status import Status

_STATUS = {
    "PIQP_SOLVED": Status.SOLVED,
    "PIQP_MAX_ITER_REACHED": Status.MAX_ITER,
    "PIQP_PRIMAL_INFEASIBLE": Status.PRIMAL_INFEASIBLE,
    "PIQP_DUAL_INFEASIBLE": Status.DUAL_INFEASIBLE,
    "PIQP_NUMERICS": Status.NUMERICAL_ERROR,
    "PIQP_INVALID_SETTINGS": Status.NUMERICAL_ERROR,
    "PIQP_UNSOLVED": Status.UNKNOWN,
}


class PIQPAdapter(LoopedAdapter):
    name = "piqp"
    package = "piqp"
    capabilities = Capabilities(batched=False, differentiable=False)
    options_note = "Absolute residual and duality-gap tolerances at eps, the relative ones 0. No time limit."

    def options(self, tolerance: Tolerance, time_limit: float) -> dict[str, Any]:
        # PIQP has no time limit setting; only tolerances and the iteration cap map.
        return {
            "eps_abs": tolerance.eps,
            "eps_rel": 0.0,
            "eps_duality_gap_abs": tolerance.eps,
            "eps_duality_gap_rel": 0.0,
            "max_iter": 250,
            "verbose": False,
        }

    def prepare_one(self, data: ProblemArrays, options: dict[str, Any]) -> Any:
        import piqp

        solver = piqp.DenseSolver()
        for key, value in options.items():
            setattr(solver.settings, key, value)

        def fortran(a: np.ndarray) -> np.ndarray | None:
            return np.asfortranarray(a) if a.size else None

        solver.setup(
            np.asfortranarray(data.Q),
            data.p,
            A=fortran(data.A),
            b=data.b if data.k else None,
            G=fortran(data.G),
            h_u=data.h if data.m else None,
        )
        return solver, data

    def solve_one(self, item: Any, options: dict[str, Any]) -> OneResult:
        solver, data = item
        status = _STATUS.get(solver.solve().name, Status.UNKNOWN)
        res = solver.result
        # PIQP: Px + c + A'y + G'(z_u - z_l) = 0 with one-sided rows, so lam = z_u.
        lam = np.asarray(res.z_u, dtype=np.float64) if data.m else np.zeros(0)
        nu = np.asarray(res.y, dtype=np.float64) if data.k else np.zeros(0)
        return OneResult(status, z=np.asarray(res.x, dtype=np.float64), lam=lam, nu=nu,
                         iterations=int(res.info.iter))
