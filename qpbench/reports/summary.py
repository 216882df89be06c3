"""Numbers the report shows, computed from the results table alone.

Definitions (kept here, in one place, so the report can state them):

* A row was *attempted* when its outcome is ok, failed, timeout, crashed or oom; unsupported and
  unavailable rows were never run and are listed apart.
* Problems that *succeeded* in a row: ``n_success`` (solved, residuals below the tolerance), or
  ``n_expected_status`` for batches built to be infeasible/unbounded, where detecting that is the
  right answer. Rows whose outcome is not ok succeeded on no problem.
* A row *succeeded* when every problem of its batch did.
* Failure-penalized time of a (case, solver): the batch's median solve time when the row succeeded,
  else the penalty (the run's time limit when the environment record holds one, else 10x the
  slowest solve measured in the group). Summarized by the shifted geometric mean
  ``exp(mean(log(t + s))) - s`` with the shift ``s`` = the order of magnitude (power of ten) of the
  median successful solve time, so that ms-scale solves get a ms shift; normalized so best = 1.0.
* Performance profile (Dolan and Moré): per case, each solver's ratio to the fastest successful
  solver; the profile at tau is the share of all cases whose ratio is at most tau.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from qpbench.results import (
    ROW_CRASHED,
    ROW_FAILED,
    ROW_OK,
    ROW_OOM,
    ROW_TIMEOUT,
    ROW_UNAVAILABLE,
    ROW_UNSUPPORTED,
)

ATTEMPTED = (ROW_OK, ROW_FAILED, ROW_TIMEOUT, ROW_CRASHED, ROW_OOM)
NOT_RUN = (ROW_UNSUPPORTED, ROW_UNAVAILABLE)
TOLERANCE_ORDER = {"low": 0, "mid": 1, "high": 2}
PENALTY_FACTOR = 10.0  # penalty when no time limit is recorded: 10x the slowest measured solve

NUMERIC_COLUMNS = (
    "n", "m", "k", "batch_size", "seed", "tolerance_eps", "repeats", "warmups",
    "setup_time_median", "setup_time_min", "setup_time_max",
    "solve_time_median", "solve_time_min", "solve_time_max", "time_per_problem", "throughput",
    "iterations_mean", "iterations_max", "n_solved", "n_primal_infeasible", "n_dual_infeasible",
    "n_max_iter", "n_numerical_error", "n_time_limit", "n_unknown", "n_success", "success_rate",
    "correct_rate", "n_expected_status", "primal_res_max", "dual_res_max", "gap_max",
    "primal_res_median", "dual_res_median", "gap_median", "obj_rel_err_max", "backward_time_median",
    "grad_err_max", "peak_memory_bytes", "calibration_time", "torch_threads",
)  # fmt: skip
TEXT_COLUMNS = ("run_id", "suite", "case_id", "family", "problem", "dtype", "device", "tolerance", "solver",
                "solver_version", "outcome", "error", "expected_status")  # fmt: skip
STATUS_COUNT_COLUMNS = (
    "n_primal_infeasible", "n_dual_infeasible", "n_max_iter", "n_numerical_error", "n_time_limit",
    "n_unknown",
)  # fmt: skip


def prepare(frame: pd.DataFrame) -> pd.DataFrame:
    """A typed copy: numeric columns as float (NaN where missing), text columns as str ("" missing),
    plus ``problems_ok`` and ``row_ok`` (see the module docstring)."""
    out = frame.copy()
    for col in NUMERIC_COLUMNS:
        if col not in out.columns:
            out[col] = np.nan
        out[col] = pd.to_numeric(out[col], errors="coerce").astype(float)
    for col in TEXT_COLUMNS:
        if col not in out.columns:
            out[col] = ""
        out[col] = out[col].map(lambda v: "" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v))
    out["suite"] = out["suite"].replace("", "(unnamed)")
    expects_solved = out["expected_status"].isin(["", "solved"])
    succeeded = np.where(expects_solved, out["n_success"], out["n_expected_status"])
    succeeded = np.nan_to_num(succeeded.astype(float), nan=0.0)
    out["problems_ok"] = np.where(out["outcome"] == ROW_OK, succeeded, 0.0)
    out["row_ok"] = (out["outcome"] == ROW_OK) & (out["batch_size"] > 0) & (out["problems_ok"] >= out["batch_size"])
    return out.reset_index(drop=True)


def ordered_solvers(frame: pd.DataFrame) -> list[str]:
    """Solvers in order of first appearance in the table (stable across report runs)."""
    return list(dict.fromkeys(frame["solver"]))


def suite_tolerance_groups(frame: pd.DataFrame) -> list[tuple[str, str, pd.DataFrame]]:
    """(suite, tolerance, rows) sorted by suite name then low < mid < high."""
    groups = [(str(s), str(t), g) for (s, t), g in frame.groupby(["suite", "tolerance"], sort=False)]
    return sorted(groups, key=lambda item: (item[0], TOLERANCE_ORDER.get(item[1], 9), item[1]))


def success_table(rows: pd.DataFrame, solvers: list[str]) -> list[dict[str, Any]]:
    """Per solver: problems attempted/succeeded, success rate, cases succeeded, cases not run."""
    table = []
    for solver in solvers:
        mine = rows[rows["solver"] == solver]
        attempted = mine[mine["outcome"].isin(ATTEMPTED)]
        problems = float(attempted["batch_size"].fillna(0).sum())
        ok = float(attempted["problems_ok"].sum())
        table.append(
            {
                "solver": solver,
                "cases_attempted": len(attempted),
                "cases_succeeded": int(attempted["row_ok"].sum()),
                "cases_not_run": int(mine["outcome"].isin(NOT_RUN).sum()),
                "problems": int(problems),
                "problems_succeeded": int(ok),
                "success_rate": ok / problems if problems > 0 else math.nan,
            }
        )
    return table


def time_limit_from(environment: Mapping[str, Any]) -> float | None:
    """The run's per-solve time limit if the environment record states one (top level or suite)."""
    candidates: list[Any] = [environment.get("time_limit")]
    suite = environment.get("suite")
    if isinstance(suite, Mapping):
        candidates.append(suite.get("time_limit"))
    for value in candidates:
        try:
            limit = float(value)
        except (TypeError, ValueError):
            continue
        if math.isfinite(limit) and limit > 0:
            return limit
    return None


def penalty_time(rows: pd.DataFrame, time_limit: float | None) -> float:
    if time_limit is not None:
        return time_limit
    slowest = rows[["solve_time_median", "solve_time_max"]].max(axis=1, skipna=True).max()
    return PENALTY_FACTOR * float(slowest) if pd.notna(slowest) and slowest > 0 else 1.0


def shift_for(rows: pd.DataFrame) -> float:
    """The power of ten at the median successful solve time (1 ms shift for ms-scale solves)."""
    times = rows.loc[rows["row_ok"], "solve_time_median"].dropna()
    times = times[times > 0]
    if times.empty:
        return 1e-3
    return float(10.0 ** math.floor(math.log10(float(times.median()))))


def case_times(rows: pd.DataFrame, solvers: list[str], penalty: float | None) -> pd.DataFrame:
    """Cases x solvers matrix of solve times; failures get ``penalty`` (inf when None).

    Cases are those attempted by at least one solver; solvers that attempted nothing are left out.
    """
    attempted = rows[rows["outcome"].isin(ATTEMPTED)]
    cases = list(dict.fromkeys(attempted["case_id"]))
    runners = [s for s in solvers if s in set(attempted["solver"])]
    fail = math.inf if penalty is None else penalty
    matrix = pd.DataFrame(fail, index=pd.Index(cases, name="case_id"), columns=runners, dtype=float)
    good = attempted[attempted["row_ok"] & attempted["solver"].isin(runners)]
    for case_id, solver, time in zip(good["case_id"], good["solver"], good["solve_time_median"], strict=True):
        if pd.notna(time):
            matrix.loc[case_id, solver] = float(time)
    return matrix


def shifted_geomean(times: np.ndarray, shift: float) -> float:
    return float(np.exp(np.mean(np.log(np.asarray(times, dtype=float) + shift))) - shift)


def penalized_geomeans(
    rows: pd.DataFrame, solvers: list[str], time_limit: float | None
) -> tuple[dict[str, float], dict[str, float], float, float]:
    """(raw shifted geomean seconds, normalized with best = 1.0, shift, penalty) per solver.

    Empty dicts when no solver succeeded on any case (a ranking of penalties alone means nothing).
    """
    penalty = penalty_time(rows, time_limit)
    shift = shift_for(rows)
    matrix = case_times(rows, solvers, penalty)
    if matrix.empty or not rows["row_ok"].any():
        return {}, {}, shift, penalty
    raw = {solver: shifted_geomean(matrix[solver].to_numpy(), shift) for solver in matrix.columns}
    best = min(raw.values())
    normalized = {solver: value / best if best > 0 else math.nan for solver, value in raw.items()}
    return raw, normalized, shift, penalty


def performance_profile(rows: pd.DataFrame, solvers: list[str]) -> tuple[pd.DataFrame, int]:
    """(ratios to the fastest successful solver per case, inf for failures; number of cases)."""
    matrix = case_times(rows, solvers, penalty=None)
    best = matrix.min(axis=1)
    ratios = matrix.div(best.where(np.isfinite(best)), axis=0).fillna(math.inf)
    return ratios, len(matrix)


def profile_at(ratios: pd.DataFrame, tau: float) -> dict[str, float]:
    """Share of cases each solver solved within ``tau`` times the fastest."""
    if ratios.empty:
        return {}
    return {solver: float((ratios[solver] <= tau).mean()) for solver in ratios.columns}


def residual_table(rows: pd.DataFrame, solvers: list[str]) -> list[dict[str, Any]]:
    """Per solver over its ok rows: worst residuals, median of per-row medians, worst objective error."""
    table = []
    for solver in solvers:
        ok = rows[(rows["solver"] == solver) & (rows["outcome"] == ROW_OK)]
        if ok.empty:
            continue
        table.append(
            {
                "solver": solver,
                "rows": len(ok),
                "primal_res_max": ok["primal_res_max"].max(),
                "dual_res_max": ok["dual_res_max"].max(),
                "gap_max": ok["gap_max"].max(),
                "primal_res_median": ok["primal_res_median"].median(),
                "dual_res_median": ok["dual_res_median"].median(),
                "gap_median": ok["gap_median"].median(),
                "obj_rel_err_max": ok["obj_rel_err_max"].max(),
            }
        )
    return table


def status_summary(row: Mapping[str, Any]) -> str:
    """Non-zero per-problem status counts of a row, e.g. 'solved 3, max_iter 1'."""
    parts = []
    for col in ("n_solved", *STATUS_COUNT_COLUMNS):
        value = row.get(col)
        if value is not None and pd.notna(value) and value > 0:
            parts.append(f"{col[2:]} {int(value)}")
    return ", ".join(parts)


def failure_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """Attempted rows where not every problem succeeded (crashes, timeouts, wrong answers)."""
    attempted = frame[frame["outcome"].isin(ATTEMPTED)]
    return attempted[~attempted["row_ok"]]


def not_run_summary(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Unsupported / unavailable rows collapsed to (solver, outcome, reason) with a count."""
    skipped = frame[frame["outcome"].isin(NOT_RUN)]
    grouped = skipped.groupby(["solver", "outcome", "error"], sort=True).size()
    return [
        {"solver": solver, "outcome": outcome, "reason": reason, "rows": int(count)}
        for (solver, outcome, reason), count in grouped.items()
    ]


def gradient_table(frame: pd.DataFrame, solvers: list[str]) -> list[dict[str, Any]]:
    """Per solver over rows with a measured backward pass: times, backward/forward ratio, grad error."""
    measured = frame[frame["backward_time_median"].notna() | frame["grad_err_max"].notna()]
    table = []
    for solver in solvers:
        mine = measured[measured["solver"] == solver]
        if mine.empty:
            continue
        ratio = mine["backward_time_median"] / mine["solve_time_median"]
        table.append(
            {
                "solver": solver,
                "rows": len(mine),
                "forward_median": mine["solve_time_median"].median(),
                "backward_median": mine["backward_time_median"].median(),
                "ratio_median": ratio.median(),
                "grad_err_max": mine["grad_err_max"].max(),
                "grad_err_median": mine["grad_err_max"].median(),
            }
        )
    return table
