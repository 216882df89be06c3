"""Reference solutions: each problem of a batch solved on its own by Clarabel (an interior-point
conic solver in double precision) at tight tolerances. Used by tests and by the runner to check
objectives and statuses; slow (one solve per problem), never part of a timing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from qpbench.adapters._common import ProblemArrays, split_problems
from qpbench.adapters.clarabel import STATUS as CLARABEL_STATUS
from qpbench.adapters.clarabel import clarabel_solver
from qpbench.problem import QPBatch
from qpbench.status import Status

DEFAULT_TOLERANCE = 1e-10


@dataclass(frozen=True)
class ReferenceSolution:
    """Per-problem results in float64 on the CPU, in QPBatch's sign conventions
    (lam >= 0 for G z <= h; Lagrangian 1/2 z'Qz + p'z + lam'(Gz - h) + nu'(Az - b)).

    ``objective`` is 1/2 z'Qz + p'z without any offset; +inf for primal infeasible problems,
    -inf for unbounded ones, NaN where the solve failed. z, lam, nu are NaN unless solved.
    ``raw_status`` keeps Clarabel's own status text (e.g. "AlmostSolved"), ``iterations`` and
    ``solve_time`` its counters.
    """

    objective: Tensor
    z: Tensor
    lam: Tensor
    nu: Tensor
    status: list[Status]
    raw_status: list[str] = field(default_factory=list)
    iterations: list[int] = field(default_factory=list)
    solve_time: list[float] = field(default_factory=list)

    def status_tensor(self) -> Tensor:
        return torch.tensor([int(s) for s in self.status], dtype=torch.long)


# Clarabel statuses by their name (the last part of str(status)): the adapter's table, except that
# "AlmostSolved" (met only Clarabel's reduced tolerances) counts as solved here; raw_status keeps
# the "Almost" statuses visible.
_STATUS_BY_NAME = {**CLARABEL_STATUS, "AlmostSolved": Status.SOLVED}


def clarabel_settings(tolerance: float, max_iter: int):  # -> clarabel.DefaultSettings
    import clarabel

    settings = clarabel.DefaultSettings()
    settings.verbose = False
    settings.max_iter = max_iter
    settings.tol_gap_abs = tolerance
    settings.tol_gap_rel = tolerance
    settings.tol_feas = tolerance
    settings.tol_infeas_abs = tolerance
    settings.tol_infeas_rel = tolerance
    settings.tol_ktratio = max(tolerance, 1e-8)
    return settings


def _status_name(status: object) -> str:
    text = str(status)
    return text.rsplit(".", 1)[-1]


# Statuses that end the search for a better attempt.
_DEFINITE = {"Solved", "PrimalInfeasible", "DualInfeasible"}


def _clarabel_attempt(
    Q: np.ndarray, p: np.ndarray, G: np.ndarray, h: np.ndarray, A: np.ndarray, b: np.ndarray, settings
):  # -> clarabel.DefaultSolution
    """One Clarabel solve (see :func:`qpbench.adapters.clarabel.clarabel_solver` for the layout)."""
    return clarabel_solver(ProblemArrays(Q, p, G, h, A, b), settings).solve()


def kkt_residual(Q, p, G, h, A, b, z, lam, nu) -> float:
    """Largest of the three residuals of QPBatch.residuals (primal, dual, gap) for one problem."""
    Qz = Q @ z
    primal = max(np.max(G @ z - h, initial=0.0), np.max(np.abs(A @ z - b), initial=0.0))
    dual = np.max(np.abs(Qz + p + G.T @ lam + A.T @ nu), initial=0.0)
    gap = abs(z @ Qz + p @ z + b @ nu + h @ lam)
    return float(max(primal, dual, gap))


def polish(Q, p, G, h, A, b, z, lam, nu):
    """Refine an interior-point answer by solving the KKT system of its active set exactly.

    Rows with lam_i > h_i - G_i z are taken as active; [[Q, Ga', A'], [Ga, 0, 0], [A, 0, 0]]
    is solved in the least-squares sense, which also copes with singular Q and dependent
    rows of A. The polished point is kept only when its KKT residual is smaller, so a wrong
    active-set guess can never make the answer worse.
    """
    from scipy.linalg import lstsq

    n, k = Q.shape[0], A.shape[0]
    active = np.flatnonzero(lam > h - G @ z)
    Ga = G[active]
    a = len(active)
    K = np.zeros((n + a + k, n + a + k))
    K[:n, :n] = Q
    K[:n, n : n + a] = Ga.T
    K[:n, n + a :] = A.T
    K[n : n + a, :n] = Ga
    K[n + a :, :n] = A
    rhs = np.concatenate([-p, h[active], b])
    try:
        sol = lstsq(K, rhs, lapack_driver="gelsy")[0]
    except (np.linalg.LinAlgError, ValueError):
        return z, lam, nu
    if not np.all(np.isfinite(sol)):
        return z, lam, nu
    z2 = sol[:n]
    lam2 = np.zeros_like(lam)
    lam2[active] = np.maximum(sol[n : n + a], 0.0)
    nu2 = sol[n + a :]
    before = kkt_residual(Q, p, G, h, A, b, z, lam, nu)
    after = kkt_residual(Q, p, G, h, A, b, z2, lam2, nu2)
    return (z2, lam2, nu2) if after < before else (z, lam, nu)


def solve_one(
    Q: np.ndarray,
    p: np.ndarray,
    G: np.ndarray,
    h: np.ndarray,
    A: np.ndarray,
    b: np.ndarray,
    settings,
    polish_solution: bool = True,
) -> tuple[Status, str, np.ndarray | None, np.ndarray | None, np.ndarray | None, int, float]:
    """Solve one dense QP. If Clarabel does not reach a definite answer, retry once without
    equilibration (Clarabel 0.11 can cycle on some well-posed problems with it on) and keep
    the more definite outcome; then polish solved answers (see :func:`polish`)."""
    k = A.shape[0]
    result = _clarabel_attempt(Q, p, G, h, A, b, settings)
    name = _status_name(result.status)
    iterations = int(getattr(result, "iterations", -1))
    seconds = float(getattr(result, "solve_time", math.nan))
    if name not in _DEFINITE:
        equilibrate, settings.equilibrate_enable = settings.equilibrate_enable, False
        try:
            retry = _clarabel_attempt(Q, p, G, h, A, b, settings)
        finally:
            settings.equilibrate_enable = equilibrate
        retry_name = _status_name(retry.status)
        iterations += int(getattr(retry, "iterations", 0))
        seconds += float(getattr(retry, "solve_time", math.nan))
        if retry_name in _DEFINITE or (retry_name.startswith("Almost") and not name.startswith("Almost")):
            result, name = retry, retry_name
    status = _STATUS_BY_NAME.get(name, Status.UNKNOWN)
    if status is not Status.SOLVED:
        return status, name, None, None, None, iterations, seconds
    x = np.asarray(result.x, dtype=np.float64)
    y = np.asarray(result.z, dtype=np.float64)
    lam, nu = y[k:], y[:k]
    if polish_solution:
        x, lam, nu = polish(Q, p, G, h, A, b, x, lam, nu)
    return status, name, x, lam, nu, iterations, seconds


def reference_solve(
    batch: QPBatch, tolerance: float = DEFAULT_TOLERANCE, max_iter: int = 200, polish: bool = True
) -> ReferenceSolution:
    """Solve every problem of ``batch`` with Clarabel (float64, CPU, one problem at a time),
    then (``polish``) refine each solved answer on its active set.

    A failure of one problem (an exception or panic inside Clarabel) gives that problem
    Status.NUMERICAL_ERROR and NaN values; the others are unaffected.
    """
    if not isinstance(batch, QPBatch):
        raise ValueError(f"batch must be a QPBatch, got {type(batch).__name__}")
    if not 0 < tolerance < 1:
        raise ValueError(f"tolerance must be in (0, 1), got {tolerance}")
    if max_iter < 1:
        raise ValueError(f"max_iter must be >= 1, got {max_iter}")
    settings = clarabel_settings(tolerance, max_iter)
    B, n, m, k = batch.batch_size, batch.n, batch.m, batch.k
    nan = math.nan
    objective = torch.full((B,), nan, dtype=torch.float64)
    z = torch.full((B, n), nan, dtype=torch.float64)
    lam = torch.full((B, m), nan, dtype=torch.float64)
    nu = torch.full((B, k), nan, dtype=torch.float64)
    statuses: list[Status] = []
    raw: list[str] = []
    iterations: list[int] = []
    times: list[float] = []
    for i, d in enumerate(split_problems(batch)):
        try:
            status, name, zi, lami, nui, its, secs = solve_one(d.Q, d.p, d.G, d.h, d.A, d.b, settings, polish)
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as error:  # Clarabel's Rust panics derive from BaseException
            status, name, its, secs = Status.NUMERICAL_ERROR, f"exception: {error!r}", -1, nan
            zi = lami = nui = None
        statuses.append(status)
        raw.append(name)
        iterations.append(its)
        times.append(secs)
        if zi is not None:
            z[i] = torch.from_numpy(zi)
            lam[i] = torch.from_numpy(lami)
            nu[i] = torch.from_numpy(nui)
            objective[i] = float(0.5 * zi @ d.Q @ zi + d.p @ zi)
        elif status is Status.PRIMAL_INFEASIBLE:
            objective[i] = math.inf
        elif status is Status.DUAL_INFEASIBLE:
            objective[i] = -math.inf
    return ReferenceSolution(objective, z, lam, nu, statuses, raw, iterations, times)
