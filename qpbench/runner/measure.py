"""One measurement: a solver on a case's batch at one tolerance level.

Runs inside a worker process (or in the runner's own process with ``--in-process``). It returns
raw per-problem arrays; :func:`summarize` turns them into results-table fields in the parent, so
the accuracy rules live in one pure, testable function.

Timing: warm-up run 1 (when ``warmups`` >= 1) is an untimed setup + solve of the batch's first
problem only (imports, code paths, caches: cheap, whatever B is); then the timed setup of the
whole batch; then warm-up runs 2..``warmups`` as untimed solves of the whole prepared batch
(shape-specific caches, CUDA kernels and allocator pools), then ``repeats`` timed solves
(adapters promise repeatable solves). Setup is timed once: it is a one-off cost per batch in
use, and repeating CVXPY's canonicalization of B problems several times would dominate a
suite's budget without telling more. With ``warmups`` = 0 everything is measured cold.
"""

from __future__ import annotations

import resource
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from qpbench.adapters.base import Tolerance
from qpbench.problem import QPBatch
from qpbench.runner.solvers import resolve_adapter
from qpbench.status import Status
from qpbench.timing import TimingStats, pinned_threads, timed_call

Phase = Callable[[str], None]


def _no_phase(_name: str) -> None:
    return None


def run_measurement(
    spec: str,
    batch: QPBatch,
    tolerance: str,
    time_limit: float,
    warmups: int,
    repeats: int,
    threads: int | None,
    phase: Phase = _no_phase,
) -> dict[str, Any]:
    """Set up and solve; return times, per-problem statuses, residuals (float64) and objectives.

    ``phase(name)`` is called before each step so a supervising process can apply the time limit
    per step rather than to the whole measurement.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    adapter = resolve_adapter(spec)
    tol = Tolerance.parse(tolerance)
    device = batch.device
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    else:
        _reset_peak_rss()
    with pinned_threads(threads) as used_threads:
        if warmups:
            phase("warm-up setup")
            first = adapter.setup(batch[0], tol, time_limit)
            phase("warm-up solve")
            adapter.solve(first)
        phase("setup")
        prepared, setup_seconds = timed_call(lambda: adapter.setup(batch, tol, time_limit), device)
        for i in range(1, warmups):
            phase(f"warm-up solve {i + 1}")
            adapter.solve(prepared)
        times = []
        for i in range(repeats):
            phase(f"solve {i + 1}")  # outside the clock: a pipe write is not solver time
            output, seconds = timed_call(lambda: adapter.solve(prepared), device)
            times.append(seconds)
    raw = {
        "solver_version": adapter.version(),
        "setup_times": [setup_seconds],
        "solve_times": times,
        "torch_threads": used_threads,
        "peak_memory_bytes": _peak_memory(device),
    }
    phase("evaluate")
    raw.update(evaluate(batch, output.z, output.lam, output.nu, output.status, output.iterations))
    raw["problem_errors"] = problem_errors(output.info)
    raw["work"] = work_counts(output.info)
    return raw


def work_counts(info: dict[str, Any]) -> dict[str, int]:
    """The load-independent work counts an adapter reports as ``info["work"]`` (name -> count,
    e.g. iterations, factorizations), as plain ints so that they cross processes."""
    return {str(name): int(count) for name, count in dict(info.get("work") or {}).items()}


def evaluate(
    batch: QPBatch,
    z: torch.Tensor,
    lam: torch.Tensor | None,
    nu: torch.Tensor | None,
    status: Any,
    iterations: Any,
) -> dict[str, Any]:
    """Per-problem residuals and objective in float64, as plain lists (they cross processes).

    A solver that returns no multipliers (``lam`` None while m > 0, or ``nu`` None while k > 0)
    is judged with multipliers recovered at its z (:func:`recover_multipliers`), and
    ``multipliers`` says so: "solver" or "recovered".
    """
    B = batch.batch_size
    statuses = np.asarray(status, dtype=np.int64).reshape(-1)
    if statuses.shape != (B,):
        raise ValueError(f"solver returned {statuses.size} statuses for a batch of {B}")
    wide = batch.to(dtype=torch.float64)
    dev = wide.device

    def as64(t: torch.Tensor | None) -> torch.Tensor | None:
        return None if t is None else torch.as_tensor(t).to(device=dev, dtype=torch.float64)

    z64 = as64(z)
    lam64, nu64 = (as64(lam) if batch.m else None), (as64(nu) if batch.k else None)
    source = MULTIPLIERS_FROM_SOLVER
    if (batch.m and lam64 is None) or (batch.k and nu64 is None):
        lam64, nu64 = recover_multipliers(wide, z64)
        source = MULTIPLIERS_RECOVERED
    res = wide.residuals(z64, lam64, nu64)
    objective = wide.objective(z64)
    iters = None if iterations is None else np.asarray(iterations, dtype=float).reshape(-1).tolist()
    return {
        "status": statuses.tolist(),
        "iterations": iters,
        "primal": res["primal"].cpu().tolist(),
        "dual": res["dual"].cpu().tolist(),
        "gap": res["gap"].cpu().tolist(),
        "objective": objective.cpu().tolist(),
        "multipliers": source,
    }


MULTIPLIERS_FROM_SOLVER = "solver"
MULTIPLIERS_RECOVERED = "recovered"


def active_rows(G: np.ndarray, slack: np.ndarray) -> np.ndarray:
    """Indices of the inequality rows whose multiplier can matter at tolerance eps, whatever eps.

    Row i moves the dual residual by at most |G_i|_inf * lam_i, so it matters only when
    lam_i > eps / |G_i|_inf; and an answer that meets the gap test has slack_i * lam_i <= eps
    (each term of the gap is nonnegative at a feasible z). Both together need slack_i <=
    |G_i|_inf: the rows within their own scale of their bound. A narrower set (slack below
    sqrt(eps), say) wrongly fails interior-point answers, which leave rows with small multipliers
    well away from their bounds; rows taken in wrongly cost nothing, since the fit penalizes
    slack * multiplier.
    """
    return np.flatnonzero(slack <= np.abs(G).max(axis=1, initial=0.0))


def recover_multipliers(batch: QPBatch, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(lam, nu) at ``z`` for a solver that returns z only: the fair reading of a bare z.

    Per problem: the rows active at z are the equalities and the inequalities of
    :func:`active_rows`; their multipliers minimize

        |Qz + p + G_a' lam_a + A' nu|_2^2 + (z'Qz + p'z + h_a' lam_a + b' nu)^2 + |s_a * lam_a|_2^2

    over lam_a >= 0, nu free: the stationarity residual, the duality gap (both tested), and each
    active row's share of the gap (slack times multiplier, |s| where the row is violated), which
    keeps rows away from their bounds from taking multipliers. Other rows get lam = 0. An accurate z then meets
    the dual and gap tests, and an inaccurate one does not: the fit cannot make a wrong z
    stationary. Problems whose z is not finite get NaN multipliers.
    """
    B, m, k = batch.batch_size, batch.m, batch.k
    arrays = {name: batch.expanded(name).detach().cpu().numpy() for name in ("Q", "p", "G", "h", "A", "b")}
    zs = z.detach().cpu().numpy()
    lam = np.full((B, m), np.nan)
    nu = np.full((B, k), np.nan)
    for i in range(B):
        if np.isfinite(zs[i]).all():
            lam[i], nu[i] = _fit_one({name: a[i] for name, a in arrays.items()}, zs[i])
    to = {"dtype": torch.float64, "device": z.device}
    return torch.as_tensor(lam, **to), torch.as_tensor(nu, **to)


def _fit_one(data: dict[str, np.ndarray], z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One problem's bounded least-squares fit (see :func:`recover_multipliers`)."""
    G, A = data["G"], data["A"]
    m, k = G.shape[0], A.shape[0]
    slack = data["h"] - G @ z
    active = active_rows(G, slack)
    lam = np.zeros(m)
    if active.size + k == 0:
        return lam, np.zeros(k)
    Qz = data["Q"] @ z
    # Rows of the fit: stationarity Qz + p + G_a' lam_a + A' nu (n), the gap z'Qz + p'z + h_a' lam_a
    # + b' nu (1), and each active row's gap share |s_i| lam_i (a); columns: lam_a, then nu.
    bounded = np.vstack([G[active].T, data["h"][active][None, :], np.diag(np.abs(slack[active]))])
    free = np.vstack([A.T, data["b"][None, :], np.zeros((active.size, k))])
    target = np.concatenate([-(Qz + data["p"]), [-(z @ Qz + data["p"] @ z)], np.zeros(active.size)])
    lam_active, nu = bounded_least_squares(bounded, free, target)
    lam[active] = lam_active
    return lam, nu


def bounded_least_squares(bounded: np.ndarray, free: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """argmin |bounded x + free y - target|_2 over x >= 0, y free.

    The free columns are eliminated exactly (the residual's part in their span can always be
    removed), leaving a nonnegative least-squares problem for x (SciPy's Lawson-Hanson ``nnls``,
    compiled, seconds where BVLS took a minute on a Maros-Meszaros problem with 2750 rows); y then
    solves the plain least squares left.
    """
    from scipy.optimize import nnls

    if free.shape[1]:
        basis, singular, _ = np.linalg.svd(free, full_matrices=False)
        keep = singular > singular.max(initial=0.0) * max(free.shape) * np.finfo(float).eps
        basis = basis[:, keep]

        def project(v: np.ndarray) -> np.ndarray:
            return v - basis @ (basis.T @ v)
    else:

        def project(v: np.ndarray) -> np.ndarray:
            return v

    x = np.zeros(bounded.shape[1])
    if bounded.shape[1]:
        x = nnls(project(bounded), project(target), maxiter=10 * max(bounded.shape))[0]
    y = np.linalg.lstsq(free, target - bounded @ x, rcond=None)[0] if free.shape[1] else np.zeros(0)
    return x, y


def problem_errors(info: dict[str, Any]) -> str:
    """The solver's per-problem messages (``info["errors"]``, ``info["error"]``), distinct, with counts."""
    messages = [str(m) for m in dict(info.get("errors") or {}).values()]
    if info.get("error"):
        messages.append(f"whole batch: {info['error']}")
    counts: dict[str, int] = {}
    for message in messages:
        line = message.strip().splitlines()[-1] if message.strip() else ""
        counts[line] = counts.get(line, 0) + 1
    text = "; ".join(f"{count} x {line}" if count > 1 else line for line, count in counts.items())
    return text if len(text) <= _MAX_ERROR_TEXT else text[: _MAX_ERROR_TEXT - 3] + "..."


_MAX_ERROR_TEXT = 500


def _reset_peak_rss() -> None:
    """Reset the process's peak RSS (Linux: writing 5 to clear_refs resets VmHWM), so that a reused
    worker reports this measurement's peak, not the largest of every earlier one."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        pass


def _peak_memory(device: torch.device) -> int:
    """Peak CUDA memory allocated by torch, or the process's peak RSS during the measurement
    (since the process started where the peak cannot be reset)."""
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(rss if sys.platform == "darwin" else rss * 1024)


def summarize(
    raw: dict[str, Any],
    eps: float,
    reference_objective: np.ndarray | None = None,
    expected_status: str = "solved",
) -> dict[str, Any]:
    """Results-table fields from one measurement's raw arrays (see ``qpbench.results.COLUMNS``).

    Success: status SOLVED and primal, dual and gap residuals all <= ``eps`` (with recovered
    multipliers where the solver returned none); ``n_failed_*`` say which test failed. ``correct_rate``:
    share of problems where the solver's SOLVED flag agrees with that residual check. The
    objective error is relative, |f - f*| / max(1, |f*|), over problems the solver reported solved
    and the reference has a finite optimum.
    """
    status = np.asarray(raw["status"], dtype=np.int64)
    B = status.size
    primal, dual, gap = (np.asarray(raw[key], dtype=float) for key in ("primal", "dual", "gap"))
    solved = status == int(Status.SOLVED)
    accurate = (primal <= eps) & (dual <= eps) & (gap <= eps)  # NaN compares False
    n_success = int((solved & accurate).sum())
    n_expected = int((status == int(Status[expected_status.upper()])).sum())
    setup = TimingStats(tuple(float(t) for t in raw["setup_times"]))
    solve = TimingStats(tuple(float(t) for t in raw["solve_times"]))
    median = solve.median
    fields: dict[str, Any] = {
        "solver_version": raw.get("solver_version", ""),
        "repeats": solve.repeats,
        "setup_time_median": setup.median,
        "setup_time_min": setup.min,
        "setup_time_max": setup.max,
        "solve_time_median": median,
        "solve_time_min": solve.min,
        "solve_time_max": solve.max,
        "solve_times": list(solve.times),
        "time_per_problem": median / B,
        "throughput": B / median if median > 0 else None,
        "n_success": n_success,
        "success_rate": n_success / B,
        "correct_rate": float((solved == accurate).sum()) / B,
        "expected_status": expected_status,
        "n_expected_status": n_expected,
        **failed_criteria(solved, primal, dual, gap, eps, B - n_expected if expected_status != "solved" else None),
        "multipliers": raw.get("multipliers", MULTIPLIERS_FROM_SOLVER),
        "problem_errors": raw.get("problem_errors", ""),
        "primal_res_max": _nan_skipping(np.max, primal),
        "dual_res_max": _nan_skipping(np.max, dual),
        "gap_max": _nan_skipping(np.max, gap),
        "primal_res_median": _nan_skipping(np.median, primal),
        "dual_res_median": _nan_skipping(np.median, dual),
        "gap_median": _nan_skipping(np.median, gap),
        "torch_threads": raw.get("torch_threads"),
        "peak_memory_bytes": raw.get("peak_memory_bytes"),
    }
    for s in Status:
        if s is not Status.RUNNING:
            fields[f"n_{s.label}"] = int((status == int(s)).sum())
    iters = raw.get("iterations")
    if iters is not None and len(iters):
        it = np.asarray(iters, dtype=float)
        fields["iterations_mean"] = _nan_skipping(np.mean, it)
        fields["iterations_max"] = _nan_skipping(np.max, it)
    from qpbench.results import COLUMNS  # here, not at the top: workers import this module without pandas

    # counts without a results column are not recorded (the table's columns are fixed)
    fields.update({f"work_{k}": v for k, v in (raw.get("work") or {}).items() if f"work_{k}" in COLUMNS})
    fields["obj_rel_err_max"] = None
    if reference_objective is not None:
        ref = np.asarray(reference_objective, dtype=float).reshape(-1)
        obj = np.asarray(raw["objective"], dtype=float)
        usable = solved & np.isfinite(ref) & np.isfinite(obj)
        if usable.any():
            err = np.abs(obj[usable] - ref[usable]) / np.maximum(1.0, np.abs(ref[usable]))
            fields["obj_rel_err_max"] = float(err.max())
    return fields


def failed_criteria(
    solved: np.ndarray, primal: np.ndarray, dual: np.ndarray, gap: np.ndarray, eps: float, wrong_status: int | None
) -> dict[str, int]:
    """Per criterion, how many problems failed it: ``status`` (not reported solved), and among the
    problems reported solved, ``primal`` / ``dual`` / ``gap`` above ``eps`` (one problem may fail
    several). For a batch meant to be infeasible or unbounded, ``wrong_status`` (problems without
    the intended status) is the status count and no residual applies."""
    if wrong_status is not None:
        return {"n_failed_status": int(wrong_status), "n_failed_primal": 0, "n_failed_dual": 0, "n_failed_gap": 0}

    def above(values: np.ndarray) -> int:
        return int((solved & ~(values <= eps)).sum())  # NaN (not measured) counts as failed

    return {
        "n_failed_status": int((~solved).sum()),
        "n_failed_primal": above(primal),
        "n_failed_dual": above(dual),
        "n_failed_gap": above(gap),
    }


def _nan_skipping(stat: Callable[[np.ndarray], Any], values: np.ndarray) -> float | None:
    """``stat`` over the non-NaN values, or None when there are none."""
    kept = values[~np.isnan(values)]
    return float(stat(kept)) if kept.size else None
