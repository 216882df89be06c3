"""A complete qpbench adapter: SciPy's SLSQP, one problem at a time (docs/adding-a-solver.md).

Put this file in the folder you run qpbench from (or anywhere on ``sys.path``) and name it as
``module:Class``::

    qpbench run mysuite.toml --solvers scipy_adapter:ScipySLSQP,osqp

The results call it ``scipy_slsqp``, the adapter's ``name``. qpbench's tests run this file.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from qpbench.adapters.base import Adapter, Capabilities, SolveOutput, Tolerance
from qpbench.problem import QPBatch
from qpbench.status import Status

# SLSQP stops when the objective changes by less than ftol; tighter than the level's residual
# tolerance, because a small objective change can hide a larger residual.
FTOL = {Tolerance.LOW: 1e-8, Tolerance.MID: 1e-12, Tolerance.HIGH: 1e-15}
MAX_ITER = 500


@dataclass
class Problem:
    """One problem as float64 NumPy arrays, rows with h = +inf (absent) left out of G, h."""

    Q: np.ndarray
    p: np.ndarray
    G: np.ndarray
    h: np.ndarray
    A: np.ndarray
    b: np.ndarray
    rows: np.ndarray  # which rows of the batch's G the kept rows are


@dataclass
class Prepared:
    problems: list[Problem]
    m: int  # rows of G in the batch (lam has this many columns)
    options: dict[str, Any]
    time_limit: float


class ScipySLSQP(Adapter):
    name = "scipy_slsqp"  # the 'solver' column of every row
    package = "scipy"  # availability() imports it; version() reports its version
    capabilities = Capabilities(batched=False, differentiable=False)  # CPU, float64, any Q (PSD)

    def options(self, tolerance: Tolerance, time_limit: float) -> dict[str, Any]:
        return {"ftol": FTOL[tolerance], "maxiter": MAX_ITER}

    def setup(self, batch: QPBatch, tolerance: Tolerance, time_limit: float) -> Prepared:
        Q, p, G, h, A, b = (batch.expanded(name).detach().to("cpu", torch.float64).numpy() for name in "QpGhAb")
        problems = []
        for i in range(batch.batch_size):
            rows = np.flatnonzero(np.isfinite(h[i]))
            problems.append(Problem(Q[i], p[i], G[i][rows], h[i][rows], A[i], b[i], rows))
        return Prepared(problems, batch.m, self.options(tolerance, time_limit), time_limit)

    def solve(self, prepared: Prepared) -> SolveOutput:
        from scipy.optimize import minimize

        B, n, k = len(prepared.problems), prepared.problems[0].p.size, prepared.problems[0].b.size
        z, lam, nu = np.zeros((B, n)), np.zeros((B, prepared.m)), np.zeros((B, k))
        status, iterations = np.full(B, int(Status.TIME_LIMIT)), np.zeros(B)
        start = time.perf_counter()
        for i, qp in enumerate(prepared.problems):
            if time.perf_counter() - start > prepared.time_limit:
                break  # the rest keep TIME_LIMIT
            # Equalities first: SLSQP returns the multipliers in that order.
            constraints = [{"type": "eq", "fun": lambda x, qp=qp: qp.A @ x - qp.b, "jac": lambda x, qp=qp: qp.A}]
            constraints += [{"type": "ineq", "fun": lambda x, qp=qp: qp.h - qp.G @ x, "jac": lambda x, qp=qp: -qp.G}]
            constraints = [c for c, rows in zip(constraints, (qp.b.size, qp.h.size), strict=True) if rows]
            result = minimize(
                lambda x, qp=qp: 0.5 * x @ qp.Q @ x + qp.p @ x,
                np.zeros(n),
                jac=lambda x, qp=qp: qp.Q @ x + qp.p,
                method="SLSQP",
                constraints=constraints,
                options=prepared.options,
            )
            z[i] = result.x
            multipliers = np.asarray(getattr(result, "multipliers", np.zeros(qp.b.size + qp.h.size)))
            # SciPy's Lagrangian is f - mu'c with c = Az - b and c = h - Gz, so nu = -mu_eq, lam = mu_ineq.
            nu[i] = -multipliers[: qp.b.size]
            lam[i, qp.rows] = multipliers[qp.b.size :]
            status[i] = _STATUS.get(result.status, int(Status.UNKNOWN))
            iterations[i] = result.nit
        as_tensor = torch.from_numpy
        return SolveOutput(z=as_tensor(z), status=status, lam=as_tensor(lam), nu=as_tensor(nu), iterations=iterations)


# SLSQP's exit codes: 0 converged, 9 iteration limit; the others (incompatible constraints,
# singular subproblems, line search failures) certify nothing about the problem.
_STATUS = {0: int(Status.SOLVED), 9: int(Status.MAX_ITER)}
