"""Gurobi (gurobipy, barrier for QPs): one problem at a time; setup builds the model.

The size-limited licence that ships with gurobipy takes at most 2000 variables and 2000
constraints, and at most 200 variables once the objective has quadratic terms (measured: a QP
with 201 variables is refused). Which licence is present is found out once per process (a model
one variable over the limit is refused with error 10010 under the restricted licence); under it,
larger problems are declared unsupported rather than left to fail, and the version says
"size-limited licence".
"""

from __future__ import annotations

from functools import cache
from typing import Any

import numpy as np

from qpbench.adapters._common import LoopedAdapter, OneResult, ProblemArrays, time_limit_option
from qpbench.adapters.base import Capabilities, Tolerance
from qpbench.problem import QPBatch
from qpbench.status import Status

SIZE_LIMIT = 2000  # restricted licence: variables and linear constraints each
QP_SIZE_LIMIT = 200  # restricted licence: variables when the objective is quadratic

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
# FeasibilityTol and OptimalityTol accept [1e-9, 1e-2].
_TOL_RANGE = (1e-9, 1e-2)
# BarConvTol bounds the barrier's RELATIVE gap; the suite's is absolute (options_note).
_RELATIVE_GAP_FACTOR = 1e-3
_SIZE_LIMIT_EXCEEDED = 10010  # GRB_ERROR_SIZE_LIMIT_EXCEEDED
LICENCE_NOTE = "size-limited licence"


@cache
def size_limited_licence() -> bool:
    """True when gurobipy runs under its size-limited licence (a model over the limit is refused)."""
    import gurobipy as gp

    env = GurobiAdapter._environment()
    try:
        model = gp.Model(env=env)
        model.addMVar(SIZE_LIMIT + 1)
        model.optimize()
    except gp.GurobiError as exc:
        return exc.errno == _SIZE_LIMIT_EXCEEDED
    finally:
        env.dispose()
    return False


class GurobiAdapter(LoopedAdapter):
    name = "gurobi"
    package = "gurobipy"
    capabilities = Capabilities(batched=False, differentiable=False)
    takes_note = f"under the size-limited licence n ≤ {QP_SIZE_LIMIT} (LPs {SIZE_LIMIT}), m + k ≤ {SIZE_LIMIT}"
    options_note = (
        "`BarConvTol` bounds the barrier's relative gap while the suite's gap test is absolute: asked "
        "for eps, 55% of the default suite's problems at mid failed that test. eps / 1000 covers "
        "objectives up to about 1000 in magnitude (the default suite's are below 40); every "
        "default-suite problem then succeeds at every level. `FeasibilityTol` and `OptimalityTol` "
        "(absolute) are eps clipped to Gurobi's range [1e-9, 1e-2]. Gurobi picks its algorithm "
        "(barrier for these QPs); `Threads = 1`; `DualReductions = 0` tells infeasible from unbounded."
    )

    def availability(self) -> tuple[bool, str]:
        try:
            self._environment().dispose()
        except Exception as exc:  # no package or no licence: unavailable
            return False, f"{type(exc).__name__}: {exc}"
        return True, ""

    def licence(self) -> str:
        return LICENCE_NOTE if self.available and size_limited_licence() else ""

    def unsupported_reason(self, batch: QPBatch, device: str | None = None) -> str | None:
        quadratic = bool((batch.Q != 0).any())
        variables = QP_SIZE_LIMIT if quadratic else SIZE_LIMIT
        too_big = batch.n > variables or batch.m + batch.k > SIZE_LIMIT
        if too_big and self.licence():
            return (f"{LICENCE_NOTE} of gurobipy: at most {SIZE_LIMIT} constraints and {SIZE_LIMIT} variables, "
                    f"{QP_SIZE_LIMIT} with a quadratic objective")  # fmt: skip
        return super().unsupported_reason(batch, device)

    def options(self, tolerance: Tolerance, time_limit: float) -> dict[str, Any]:
        tol = min(max(tolerance.eps, _TOL_RANGE[0]), _TOL_RANGE[1])
        opts: dict[str, Any] = {
            "OutputFlag": 0,
            "Threads": 1,  # one problem per core: parallelism is the loop wrapper's job
            "FeasibilityTol": tol,  # absolute, on primal rows
            "OptimalityTol": tol,  # absolute, on reduced costs
            "BarConvTol": tolerance.eps * _RELATIVE_GAP_FACTOR,
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
