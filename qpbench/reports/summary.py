"""Numbers the report shows, computed from the results table alone.

Success, failure-penalized time, the shifted geometric mean and the performance profile come from
:mod:`qpbench.metrics`, so the report, ``qpbench run``'s closing summary and the regression check
agree; their definitions are in that module's docstring. What is report-only lives here: the
penalty when no time limit is recorded, residual, failure and gradient tables.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from qpbench import metrics
from qpbench.results import ROW_OK, ROW_UNAVAILABLE, ROW_UNSUPPORTED
from qpbench.status import Status

ATTEMPTED = metrics.ATTEMPTED  # ok, failed, timeout, crashed, oom
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
# the runner's per-status count columns (qpbench.runner.measure), less solved
STATUS_COUNT_COLUMNS = tuple(f"n_{s.label}" for s in Status if s not in (Status.SOLVED, Status.RUNNING))


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
    out["problems_ok"] = metrics.problem_successes(out)
    out["row_ok"] = metrics.row_succeeded(out) & (out["outcome"] == ROW_OK)  # so row_ok implies attempted
    return out.reset_index(drop=True)


def ordered_solvers(frame: pd.DataFrame) -> list[str]:
    """Solvers in order of first appearance in the table (stable across report runs)."""
    return list(dict.fromkeys(frame["solver"]))


def suite_tolerance_groups(frame: pd.DataFrame) -> list[tuple[str, str, pd.DataFrame]]:
    """(suite, tolerance, rows) sorted by suite name then low < mid < high."""
    groups = [(str(s), str(t), g) for (s, t), g in frame.groupby(["suite", "tolerance"], sort=False)]
    return sorted(groups, key=lambda item: (item[0], TOLERANCE_ORDER.get(item[1], 9), item[1]))


def success_table(rows: pd.DataFrame, solvers: list[str]) -> list[dict[str, Any]]:
    """Per solver: cases attempted / all solved / not run, problems, success and correct rate."""
    rates = metrics.success_rates(rows).set_index("solver") if not rows.empty else pd.DataFrame()
    table = []
    for solver in solvers:
        mine = rows[rows["solver"] == solver]
        found = solver in rates.index
        table.append(
            {
                "solver": solver,
                "cases_attempted": int(rates.loc[solver, "cases"]) if found else 0,
                "cases_succeeded": int(mine["row_ok"].sum()),
                "cases_not_run": int(mine["outcome"].isin(NOT_RUN).sum()),
                "problems": int(rates.loc[solver, "problems"]) if found else 0,
                "problems_succeeded": int(rates.loc[solver, "successes"]) if found else 0,
                "success_rate": float(rates.loc[solver, "success_rate"]) if found else math.nan,
                # metrics reads a missing correct_rate as 0; the report shows it as missing instead
                "correct_rate": float(rates.loc[solver, "correct_rate"])
                if found and mine["correct_rate"].notna().any()
                else math.nan,
            }
        )
    return table


def time_limit_from(environment: Mapping[str, Any]) -> float | None:
    """The run's per-solve time limit from the environment record: top level, the suite, or the
    largest of the suite's case groups (a conservative penalty when groups differ)."""
    candidates: list[Any] = [environment.get("time_limit")]
    suite = environment.get("suite")
    if isinstance(suite, Mapping):
        candidates.append(suite.get("time_limit"))
        groups = suite.get("groups")
        if isinstance(groups, list):
            candidates.append(max((_positive(g.get("time_limit")) or 0.0 for g in groups if isinstance(g, Mapping)),
                                  default=None))  # fmt: skip
    for value in candidates:
        limit = _positive(value)
        if limit is not None:
            return limit
    return None


def _positive(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) and number > 0 else None


def penalty_time(rows: pd.DataFrame, time_limit: float | None) -> float:
    """What a failure costs: the time limit, else 10x the slowest solve measured in ``rows``."""
    if time_limit is not None:
        return time_limit
    slowest = rows[["solve_time_median", "solve_time_max"]].max(axis=1, skipna=True).max()
    return PENALTY_FACTOR * float(slowest) if pd.notna(slowest) and slowest > 0 else 1.0


def penalized_geomeans(rows: pd.DataFrame, time_limit: float | None) -> tuple[pd.DataFrame, float, float]:
    """(per solver: cases, geomean seconds, relative with best = 1.0, min/median/max of the penalized
    times; shift; penalty).

    Empty when no solver succeeded on any case: a ranking of penalties alone means nothing.
    """
    penalty = penalty_time(rows, time_limit)
    shift = metrics.default_shift(rows)
    if not rows["row_ok"].any():
        return pd.DataFrame(columns=["solver", "cases", "geomean", "relative", "min", "median", "max"]), shift, penalty
    table = metrics.runtime_summary(rows, time_limit=penalty, shift=shift)
    return table[["solver", "cases", "geomean", "relative", "min", "median", "max"]], shift, penalty


def performance_profile(rows: pd.DataFrame, solvers: list[str], time_limit: float) -> tuple[pd.DataFrame, int]:
    """(cases x solvers ratio to the fastest, inf where a solver did not succeed; number of cases).

    Cases are those some solver succeeded on (:func:`qpbench.metrics.performance_ratios`).
    """
    ratios = metrics.performance_ratios(rows, time_limit=time_limit)
    runners = [s for s in solvers if s in set(rows.loc[rows["outcome"].isin(ATTEMPTED), "solver"])]
    if ratios.empty:
        return pd.DataFrame(columns=runners, dtype=float), 0
    table = ratios.pivot_table(index="case_id", columns="solver", values="ratio", aggfunc="min")
    table = table.reindex(columns=runners).fillna(math.inf)
    return table, len(table)


def solved_share(ratios: pd.DataFrame) -> dict[str, float]:
    """Share of the profile's cases each solver succeeded on at any speed."""
    if ratios.empty:
        return {solver: math.nan for solver in ratios.columns}
    return {solver: float(np.isfinite(ratios[solver]).mean()) for solver in ratios.columns}


def profile_at(ratios: pd.DataFrame, tau: float) -> dict[str, float]:
    """Share of cases each solver solved within ``tau`` times the fastest."""
    if ratios.empty:
        return {solver: math.nan for solver in ratios.columns}
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


def worst_residual(rows: pd.DataFrame) -> pd.Series:
    """Per row: the worst of its residuals, max(primal, dual, gap) (NaN where none was measured)."""
    return rows[["primal_res_max", "dual_res_max", "gap_max"]].max(axis=1, skipna=True)


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
    attempted = metrics.attempted(frame)
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
