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
    """Per-problem residuals and objective in float64, as plain lists (they cross processes)."""
    B = batch.batch_size
    statuses = np.asarray(status, dtype=np.int64).reshape(-1)
    if statuses.shape != (B,):
        raise ValueError(f"solver returned {statuses.size} statuses for a batch of {B}")
    wide = batch.to(dtype=torch.float64)
    dev = wide.device

    def as64(t: torch.Tensor | None) -> torch.Tensor | None:
        return None if t is None else torch.as_tensor(t).to(device=dev, dtype=torch.float64)

    z64 = as64(z)
    res = wide.residuals(z64, as64(lam) if batch.m else None, as64(nu) if batch.k else None)
    objective = wide.objective(z64)
    iters = None if iterations is None else np.asarray(iterations, dtype=float).reshape(-1).tolist()
    return {
        "status": statuses.tolist(),
        "iterations": iters,
        "primal": res["primal"].cpu().tolist(),
        "dual": res["dual"].cpu().tolist(),
        "gap": res["gap"].cpu().tolist(),
        "objective": objective.cpu().tolist(),
    }


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

    Success: status SOLVED and primal, dual and gap residuals all <= ``eps``. ``correct_rate``:
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
        "n_expected_status": int((status == int(Status[expected_status.upper()])).sum()),
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


def _nan_skipping(stat: Callable[[np.ndarray], Any], values: np.ndarray) -> float | None:
    """``stat`` over the non-NaN values, or None when there are none."""
    kept = values[~np.isnan(values)]
    return float(stat(kept)) if kept.size else None
