"""The in-house batched proximal interior-point QP solver (CPU and CUDA, float32/float64).

    from qpbench.solver import solve
    sol = solve(batch)                 # batch: qpbench.QPBatch
    sol.z, sol.lam, sol.nu, sol.statuses()

The method is described in docs/solver.md.
"""

from __future__ import annotations

from qpbench.problem import QPBatch
from qpbench.solver.driver import solve_batch
from qpbench.solver.result import QPSolution, SolveInfo, WorkCounts
from qpbench.solver.settings import SolverSettings

__all__ = ["QPSolution", "SolveInfo", "SolverSettings", "WorkCounts", "solve"]


def solve(batch: QPBatch, settings: SolverSettings | None = None, **overrides: object) -> QPSolution:
    """Solve every problem of ``batch``; keyword overrides update ``settings`` (e.g. eps_abs=1e-6).

    The result carries no autograd history even for inputs that require grad; differentiate
    through ``qpbench.layer.QPFunction`` (implicit differentiation at the solution) instead."""
    if not isinstance(batch, QPBatch):
        raise ValueError(f"batch must be a qpbench.QPBatch, got {type(batch).__name__}")
    settings = settings or SolverSettings()
    return solve_batch(batch, settings.with_updates(**overrides) if overrides else settings)
