"""Solvers reached through CVXPY (one adapter per QP-capable backend installed), one problem at a time.

Fairness: CVXPY compiles (canonicalizes) a problem the first time it is solved. Here setup builds
each problem from constants and calls ``problem.get_problem_data(solver)``, which runs the whole
compilation and returns the solver's data, the solving chain and the inverse data; solve then runs
only ``chain.solve_via_data`` (the backend itself) and ``problem.unpack_results`` (mapping the answer
back, statuses and duals included). So setup counts canonicalization and solve counts what a CVXPY
user pays on every solve after the first (docs/solvers.md).
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


# ECOS's tolerances bound the cone program CVXPY makes of the QP, not the QP (_ECOS_NOTE).
_ECOS_FACTOR = 1e-5
_ECOS_FLOOR = 1e-11


def _ecos_options(tolerance: Tolerance, time_limit: float) -> dict[str, Any]:
    # ECOS has no time limit; abstol/reltol bound the gap, feastol the residuals.
    tol = max(float(f"{tolerance.eps * _ECOS_FACTOR:.3g}"), _ECOS_FLOOR)  # 1e-11, not 1.0000000000000001e-11
    return {"abstol": tol, "reltol": tol, "feastol": tol, "max_iters": 500}


# CVXPY cannot switch on ProxQP's gap test (_PROXQP_NOTE).
_PROXQP_GAP_MARGIN = 1e-2
_ECOS_NOTE = (
    "ECOS is a conic solver: CVXPY hands it the QP as a second-order cone program, and ECOS's "
    "tolerances bound that program's residuals, not the QP's. Asked for eps, every default-suite answer "
    "at mid had QP dual residuals and gaps 10^3 to 10^5 times eps (and z off the optimum by up to "
    "2e-3); the tolerances are therefore eps × 1e-5, floored at 1e-11, below which ECOS stops "
    "\"inaccurate\" on most problems. That still leaves mid out of reach (see 'Limits measured'): the "
    "solver's limit through this formulation, not a setting. No time limit."
)
_PROXQP_NOTE = (
    "CVXPY's PROXQP interface passes ProxQP `eps_abs`, `eps_rel` and `max_iter` only, so ProxQP's "
    "duality-gap test cannot be switched on: asked for eps, 16% of default-suite answers at mid failed "
    "the gap test; asked for eps / 100 (as proxsuite's torch layer is), none fails at any level."
)


def _cvxpy_proxqp_options(tolerance: Tolerance, time_limit: float) -> dict[str, Any]:
    return {"eps_abs": tolerance.eps * _PROXQP_GAP_MARGIN, "eps_rel": 0.0, "max_iter": 10_000}


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
        options_note: str = "",
    ) -> None:
        self.solver = solver
        self.name = f"cvxpy_{solver.lower()}"
        self.capabilities = capabilities
        self._options_from = options_from
        self._direct = direct  # the direct adapter, for licence checks and size limits
        self._backend_package = backend_package or (direct.package if direct is not None else "")
        self.status_source = "CVXPY's"
        self.takes_note = direct.takes_note if direct is not None else ""
        self.options_note = options_note or (
            f"The `{direct.name}` adapter's options, less those CVXPY sets from its own `verbose`." if direct else ""
        )

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

    def package_version(self) -> str:
        from importlib.metadata import PackageNotFoundError, version

        try:
            backend = version(self._backend_package)
        except (PackageNotFoundError, ValueError):
            backend = "?"
        return f"{super().package_version()} ({self.solver} {backend})"

    def licence(self) -> str:
        return self._direct.licence() if self._direct is not None else ""

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
        if solver == "PROXQP":
            adapters.append(CvxpyAdapter(solver, _cvxpy_proxqp_options, direct.capabilities, direct,
                                         options_note=_PROXQP_NOTE))
        else:
            adapters.append(CvxpyAdapter(solver, direct.options, direct.capabilities, direct))
    adapters.append(CvxpyAdapter("ECOS", _ecos_options, looped, backend_package="ecos", options_note=_ECOS_NOTE))
    return adapters
