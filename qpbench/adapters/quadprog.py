"""quadprog (Goldfarb–Idnani dual active set): dense, Q must be positive definite."""

from __future__ import annotations

from typing import Any

import numpy as np

from qpbench.adapters._common import LoopedAdapter, OneResult, ProblemArrays, conic_rows
from qpbench.adapters.base import Capabilities, Tolerance
from qpbench.status import Status


class QuadprogAdapter(LoopedAdapter):
    name = "quadprog"
    package = "quadprog"
    capabilities = Capabilities(batched=False, differentiable=False, needs_pd_q=True, lp=False)
    options_note = "quadprog has no tolerance, iteration or time options: its active-set method runs to the end."

    def options(self, tolerance: Tolerance, time_limit: float) -> dict[str, Any]:
        # quadprog has no tolerance, iteration or time options: it runs its active-set method to the end.
        return {}

    def prepare_one(self, data: ProblemArrays, options: dict[str, Any]) -> Any:
        # quadprog solves min 1/2 x'Gx - a'x s.t. C'x >= b, the first meq rows as equalities.
        M, rhs = conic_rows(data)
        return data, np.ascontiguousarray(-M.T), -rhs

    def solve_one(self, item: Any, options: dict[str, Any]) -> OneResult:
        import quadprog

        data, C, rhs = item
        try:
            if C.shape[1]:
                x, _, _, iters, multipliers, _ = quadprog.solve_qp(data.Q, -data.p, C, rhs, data.k)
            else:
                x, _, _, iters, multipliers, _ = quadprog.solve_qp(data.Q, -data.p)
        except ValueError as exc:
            message = str(exc)
            if "inconsistent" in message:
                return OneResult(Status.PRIMAL_INFEASIBLE, error=message)
            return OneResult(Status.NUMERICAL_ERROR, error=message)
        # With C = -[A; G]' the multipliers of C'x >= b are those of Az = b and Gz <= h (signs agree).
        multipliers = np.asarray(multipliers, dtype=np.float64) if C.shape[1] else np.zeros(0)
        return OneResult(
            Status.SOLVED, z=np.asarray(x), lam=multipliers[data.k : data.k + data.m],
            nu=multipliers[: data.k], iterations=int(iters[0]),
        )
