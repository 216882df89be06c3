"""Gurobi (gurobipy, barrier for QPs): one problem at a time; setup builds the model.

The size-limited licence that ships with gurobipy takes at most 2000 variables and 2000
constraints; larger problems are declared unsupported rather than left to fail.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from qpbench.adapters._common import LoopedAdapter, OneResult, ProblemArrays, time_limit_option
from qpbench.adapters.base import Capabilities, Tolerance
from qpbench.problem import QPBatch
from qpbench.status import Status

SIZE_LIMIT = 2000  # restricted licence: variables and linear constraints each

# gurobipy GRB.Status codes.
_STATUS = {
    2: Status.SOLVED,  # OPTIMAL
    3: Status.PRIMAL_INFEASIBLE,  # INFEASIBLE
    4: Status.PRIMAL_INFEASIBLE,  # INF_OR_UNBD (presolve could not tell; DualReductions=0 avoids it)
    5: Status.DUAL_INFEASIBLE,  # UNBOUNDED
    7: Status.MAX_ITER,  # ITERATION_LIMIT
    9: Status.TIME_LIMIT,
    12: Status.NUMERICAL_ERROR,  # NUMERIC
    13: Status.MAX_ITER,  # SUBOPTIMAL
}
# Gurobi's tolerance parameters accept [1e-9, 1e-2].
_TOL_RANGE = (1e-9, 1e-2)


class GurobiAdapter(LoopedAdapter):
    name = "gurobi"
    package = "gurobipy"
    capabilities = Capabilities(batched=False, differentiable=False)

    def availability(self) -> tuple[bool, str]:
        try:
            self._environment().dispose()
        except Exception as exc:  # no package or no licence: unavailable
            return False, f"{type(exc).__name__}: {exc}"
        return True, ""

    def unsupported_reason(self, batch: QPBatch, device: str | None = None) -> str | None:
        if batch.n > SIZE_LIMIT or batch.m + batch.k > SIZE_LIMIT:
            return f"restricted gurobipy licence: at most {SIZE_LIMIT} variables and {SIZE_LIMIT} constraints"
        return super().unsupported_reason(batch, device)

    def options(self, tolerance: Tolerance, time_limit: float) -> dict[str, Any]:
        tol = min(max(tolerance.eps, _TOL_RANGE[0]), _TOL_RANGE[1])
        opts: dict[str, Any] = {
            "OutputFlag": 0,
            "Threads": 1,  # one problem per core: parallelism is the loop wrapper's job
            "FeasibilityTol": tol,
            "OptimalityTol": tol,
            "BarConvTol": tol,
            "BarQCPConvTol": tol,
            "DualReductions": 0,  # tell infeasible from unbounded
        }
        opts.update(time_limit_option("TimeLimit", time_limit))
        return opts

    @staticmethod
    def _environment() -> Any:
        import gurobipy as gp

        env = gp.Env(empty=True)
        env.setParam("OutputFlag", 0)
        env.start()
        return env

    def prepare_one(self, data: ProblemArrays, options: dict[str, Any]) -> Any:
        import gurobipy as gp

        env = self._environment()
        model = gp.Model(env=env)
        for key, value in options.items():
            model.setParam(key, value)
        z = model.addMVar(data.n, lb=-gp.GRB.INFINITY, ub=gp.GRB.INFINITY)
        model.setObjective(0.5 * (z @ data.Q @ z) + data.p @ z, gp.GRB.MINIMIZE)
        ineq = model.addConstr(data.G @ z <= data.h) if data.m else None
        eq = model.addConstr(data.A @ z == data.b) if data.k else None
        model.update()
        return model, env, z, ineq, eq, data

    def solve_one(self, item: Any, options: dict[str, Any]) -> OneResult:
        model, _, z, ineq, eq, _ = item
        model.reset()  # discard the previous solution so that every repeat does the same work
        model.optimize()
        status = _STATUS.get(int(model.Status), Status.UNKNOWN)
        iterations = int(model.BarIterCount) or int(model.IterCount)
        if model.SolCount == 0:
            return OneResult(status, iterations=iterations)
        try:
            x = np.asarray(z.X, dtype=np.float64)
            # Gurobi's Pi is <= 0 on an active <= row of a minimization: negate for lam and nu.
            lam = -np.asarray(ineq.Pi, dtype=np.float64) if ineq is not None else np.zeros(0)
            nu = -np.asarray(eq.Pi, dtype=np.float64) if eq is not None else np.zeros(0)
        except AttributeError:  # gurobipy raises this when a solution attribute is unavailable
            return OneResult(status, iterations=iterations)
        return OneResult(status, z=x, lam=lam, nu=nu, iterations=iterations)
