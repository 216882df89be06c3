"""Solvers reached through CVXPY (one adapter per QP-capable backend installed), one problem at a time.

Fairness: CVXPY compiles (canonicalizes) a problem the first time it is solved. Here setup builds
each problem from constants and calls ``problem.get_problem_data(solver)``, which runs the whole
compilation and returns the solver's data, the solving chain and the inverse data; solve then runs
only ``chain.solve_via_data`` (the backend itself) and ``problem.unpack_results`` (mapping the answer
back, statuses and duals included). So setup counts canonicalization and solve counts what a CVXPY
user pays on every solve after the first (problems/solvers.md).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from qpbench.adapters._common import LoopedAdapter, OneResult, ProblemArrays
from qpbench.adapters.base import Adapter, Capabilities, Tolerance
from qpbench.problem import QPBatch
from qpbench.status import Status

_STATUS = {
    "optimal": Status.SOLVED,
    "optimal_inaccurate": Status.MAX_ITER,  # stopped short of the requested accuracy
    "infeasible": Status.PRIMAL_INFEASIBLE,
    "infeasible_inaccurate": Status.PRIMAL_INFEASIBLE,
    "unbounded": Status.DUAL_INFEASIBLE,
    "unbounded_inaccurate": Status.DUAL_INFEASIBLE,
    "infeasible_or_unbounded": Status.UNKNOWN,
    "user_limit": Status.TIME_LIMIT,  # CVXPY also reports iteration limits this way
    "solver_error": Status.NUMERICAL_ERROR,
}
# Options CVXPY sets itself from its own ``verbose`` argument; passing them again conflicts.
_VERBOSITY_KEYS = ("verbose", "output_flag", "OutputFlag")


def _ecos_options(tolerance: Tolerance, time_limit: float) -> dict[str, Any]:
    # ECOS has no time limit; abstol/reltol bound the gap, feastol the residuals.
    eps = tolerance.eps
    return {"abstol": eps, "reltol": eps, "feastol": eps, "max_iters": 500}


class CvxpyAdapter(LoopedAdapter):
    """``cvxpy_<backend>``: the backend's options come from the direct adapter's mapping."""

    package = "cvxpy"

    def __init__(
        self,
        solver: str,
        options_from: Callable[[Tolerance, float], dict[str, Any]],
        capabilities: Capabilities,
        direct: Adapter | None = None,
        backend_package: str = "",
    ) -> None:
        self.solver = solver
        self.name = f"cvxpy_{solver.lower()}"
        self.capabilities = capabilities
        self._options_from = options_from
        self._direct = direct  # the direct adapter, for licence checks and size limits
        self._backend_package = backend_package or (direct.package if direct is not None else "")

    def availability(self) -> tuple[bool, str]:
        try:
            import cvxpy as cp
        except Exception as exc:  # no cvxpy: unavailable
            return False, f"{type(exc).__name__}: {exc}"
        if self.solver not in cp.installed_solvers():
            return False, f"CVXPY backend {self.solver} is not installed"
        if self._direct is not None:
            ok, reason = self._direct.availability()
            if not ok:
                return False, reason
        return True, ""

    def version(self) -> str:
        from importlib.metadata import PackageNotFoundError, version

        try:
            backend = version(self._backend_package)
        except (PackageNotFoundError, ValueError):
            backend = "?"
        return f"{super().version()} ({self.solver} {backend})"

    def unsupported_reason(self, batch: QPBatch, device: str | None = None) -> str | None:
        if self._direct is not None:
            reason = self._direct.unsupported_reason(batch, device)
            if reason is not None:
                return reason
        return super().unsupported_reason(batch, device)

    def options(self, tolerance: Tolerance, time_limit: float) -> dict[str, Any]:
        opts = self._options_from(tolerance, time_limit)
        return {k: v for k, v in opts.items() if k not in _VERBOSITY_KEYS}

    def prepare_one(self, data: ProblemArrays, options: dict[str, Any]) -> Any:
        import cvxpy as cp

        z = cp.Variable(data.n)
        objective = 0.5 * cp.quad_form(z, cp.psd_wrap(data.Q)) + data.p @ z
        ineq = data.G @ z <= data.h if data.m else None
        eq = data.A @ z == data.b if data.k else None
        constraints = [c for c in (ineq, eq) if c is not None]
        problem = cp.Problem(cp.Minimize(objective), constraints)
        # The options go in here too: some backends read them back when inverting the solution.
        compiled, chain, inverse = problem.get_problem_data(self.solver, solver_opts=dict(options))
        return problem, z, ineq, eq, compiled, chain, inverse

    def solve_one(self, item: Any, options: dict[str, Any]) -> OneResult:
        from cvxpy.error import SolverError

        problem, z, ineq, eq, compiled, chain, inverse = item
        try:
            # Some backends edit solver_opts in place; hand each solve a fresh copy.
            raw = chain.solve_via_data(problem, compiled, warm_start=False, verbose=False,
                                       solver_opts=dict(options))
            problem.unpack_results(raw, chain, inverse)
        except SolverError as exc:
            return OneResult(Status.NUMERICAL_ERROR, error=f"SolverError: {exc}")
        status = _STATUS.get(str(problem.status), Status.UNKNOWN)
        stats = problem.solver_stats
        iterations = None if stats is None or stats.num_iters is None else int(stats.num_iters)
        if z.value is None:
            return OneResult(status, iterations=iterations, error="" if status else str(problem.status))

        def dual(con: Any) -> np.ndarray | None:
            if con is None:
                return np.zeros(0)
            value = con.dual_value
            return None if value is None else np.asarray(value, dtype=np.float64).reshape(con.size)

        # CVXPY's duals follow the Lagrangian f + lam'(Gz - h) + nu'(Az - b): the suite's signs.
        x = np.asarray(z.value, dtype=np.float64).reshape(-1)
        return OneResult(status, z=x, lam=dual(ineq), nu=dual(eq), iterations=iterations)


def cvxpy_adapters() -> list[CvxpyAdapter]:
    """One adapter per QP-capable CVXPY backend this suite knows the options of."""
    from qpbench.adapters.clarabel import ClarabelAdapter
    from qpbench.adapters.daqp import DAQPAdapter
    from qpbench.adapters.gurobi import GurobiAdapter
    from qpbench.adapters.highs import HiGHSAdapter
    from qpbench.adapters.osqp import OSQPAdapter
    from qpbench.adapters.piqp import PIQPAdapter
    from qpbench.adapters.proxqp import ProxQPAdapter
    from qpbench.adapters.scs import SCSAdapter

    looped = Capabilities(batched=False, differentiable=False)
    adapters = []
    for solver, direct in (
        ("OSQP", OSQPAdapter()),
        ("CLARABEL", ClarabelAdapter()),
        ("SCS", SCSAdapter()),
        ("PIQP", PIQPAdapter()),
        ("PROXQP", ProxQPAdapter()),
        ("DAQP", DAQPAdapter()),
        ("HIGHS", HiGHSAdapter()),
        ("GUROBI", GurobiAdapter()),
    ):
        adapters.append(CvxpyAdapter(solver, direct.options, direct.capabilities, direct))
    adapters.append(CvxpyAdapter("ECOS", _ecos_options, looped, backend_package="ecos"))
    return adapters
