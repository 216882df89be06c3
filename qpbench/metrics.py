"""Summary metrics over the results table (pure functions of a DataFrame; no solver imports).

Used by ``qpbench run``'s closing summary, the reports and the regression check. The input is the
table of :func:`qpbench.results.load_table` (or any frame with the same columns).

Definitions (DESIGN.md, "Measurement rules"):

* A row is **attempted** when its outcome is ok / failed / timeout / crashed / oom. Rows that are
  unsupported or unavailable say the solver could not take the case; they are left out of a
  solver's rates and times (``cases`` in every summary says how many rows were counted).
* A problem is a **success** when the solver said solved and all three residuals are within the
  tolerance (``n_success``). For a case whose generator makes deliberately infeasible or
  unbounded problems (``expected_status`` not 'solved'), success means reporting that status
  (``n_expected_status``).
* A row (one batch solve) **succeeds** when every problem of its batch does: the batch call is
  what a user waits for, so a batch with one failed problem did not deliver.
* **Failure-penalized runtime**: the row's median solve time if it succeeded, else the time limit.
* **Shifted geometric mean** ``exp(mean(log(t + s))) - s``. The shift keeps tiny times from
  dominating the mean; it must match the times measured (qpbenchmark's 10 s suits second-scale
  solves, not these millisecond ones). By default ``s`` is 10 % of the median successful solve
  time in the table, floored at 1 µs: scale-free, and the same shift for every solver compared.
* **Performance profile** (Dolan and Moré 2002): per case and tolerance, each solver's ratio of
  time to the best time of any solver on that case (a failure is an infinite ratio); the profile
  is the share of cases with ratio <= tau.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

ATTEMPTED = ("ok", "failed", "timeout", "crashed", "oom")
DEFAULT_SHIFT_FRACTION = 0.1
MIN_SHIFT = 1e-6
_GROUP = ["solver", "tolerance"]


def attempted(df: pd.DataFrame) -> pd.DataFrame:
    """Rows where the solver ran (or tried to): outcome ok / failed / timeout / crashed / oom."""
    return df[df["outcome"].isin(ATTEMPTED)]


def problem_successes(df: pd.DataFrame) -> pd.Series:
    """Successful problems per row (0 for rows that did not run to the end)."""
    expected = df["expected_status"].fillna("solved").replace("", "solved")
    by_residuals = pd.to_numeric(df["n_success"], errors="coerce").fillna(0)
    by_status = pd.to_numeric(df["n_expected_status"], errors="coerce").fillna(0)
    counts = by_residuals.where(expected == "solved", by_status)
    return counts.where(df["outcome"] == "ok", 0).astype(float)


def row_succeeded(df: pd.DataFrame) -> pd.Series:
    """True where every problem of the row's batch is a success."""
    batch = pd.to_numeric(df["batch_size"], errors="coerce")
    return (problem_successes(df) >= batch) & (batch > 0)


def _time_limits(df: pd.DataFrame, time_limit: float | None) -> pd.Series:
    if time_limit is not None:
        if not time_limit > 0:
            raise ValueError(f"time_limit must be > 0, got {time_limit}")
        return pd.Series(float(time_limit), index=df.index)
    if "time_limit" in df.columns and df["time_limit"].notna().all():
        return pd.to_numeric(df["time_limit"]).astype(float)
    raise ValueError("time_limit is required: the table has no time_limit for every row")


def penalized_times(df: pd.DataFrame, time_limit: float | None = None) -> pd.Series:
    """Each row's median solve time if it succeeded, else the time limit (seconds)."""
    limits = _time_limits(df, time_limit)
    times = pd.to_numeric(df["solve_time_median"], errors="coerce")
    ok = row_succeeded(df) & times.notna()
    return times.where(ok, limits).astype(float)


def shifted_geomean(values: Sequence[float] | np.ndarray | pd.Series, shift: float) -> float:
    """``exp(mean(log(v + shift))) - shift``; NaN for an empty input."""
    if not shift >= 0:
        raise ValueError(f"shift must be >= 0, got {shift}")
    arr = np.asarray(values, dtype=float)
    if arr.size == 0:
        return float("nan")
    if (arr < 0).any() or not np.isfinite(arr).all():
        raise ValueError("values must be finite and >= 0")
    if shift == 0 and (arr == 0).any():
        raise ValueError("values contain 0; use a positive shift")
    return float(np.exp(np.mean(np.log(arr + shift))) - shift)


def default_shift(df: pd.DataFrame, fraction: float = DEFAULT_SHIFT_FRACTION) -> float:
    """``fraction`` of the median successful solve time in ``df`` (at least 1 µs; 1 ms if none)."""
    rows = attempted(df)
    times = pd.to_numeric(rows["solve_time_median"], errors="coerce")[row_succeeded(rows)].dropna()
    if times.empty:
        return 1e-3
    return max(fraction * float(times.median()), MIN_SHIFT)


def success_rates(df: pd.DataFrame) -> pd.DataFrame:
    """Per solver and tolerance: attempted cases, problems, success_rate and correct_rate."""
    rows = attempted(df).copy()
    rows["_success"] = problem_successes(rows)
    rows["_batch"] = pd.to_numeric(rows["batch_size"]).astype(float)
    correct = pd.to_numeric(rows["correct_rate"], errors="coerce").fillna(0.0)
    rows["_correct"] = correct.where(rows["outcome"] == "ok", 0.0) * rows["_batch"]
    out = rows.groupby(_GROUP, sort=True).agg(
        cases=("case_id", "size"),
        problems=("_batch", "sum"),
        successes=("_success", "sum"),
        correct=("_correct", "sum"),
    )
    out["success_rate"] = out["successes"] / out["problems"]
    out["correct_rate"] = out["correct"] / out["problems"]
    return out.drop(columns=["correct"]).reset_index()


def runtime_summary(
    df: pd.DataFrame, time_limit: float | None = None, shift: float | None = None
) -> pd.DataFrame:
    """Per solver and tolerance: shifted geomean of failure-penalized times, and relative to the best.

    ``relative`` is 1.0 for the fastest solver at each tolerance level. Also returns the shift used
    and the spread (min, median, max) of the penalized times beside the summary.
    """
    rows = attempted(df).copy()
    if rows.empty:
        return pd.DataFrame(
            columns=[*_GROUP, "cases", "geomean", "relative", "min", "median", "max", "shift"]
        )
    s = default_shift(df) if shift is None else float(shift)
    rows["_t"] = penalized_times(rows, time_limit)
    records = []
    for (solver, tol), grp in rows.groupby(_GROUP, sort=True):
        t = grp["_t"]
        records.append(
            {
                "solver": solver,
                "tolerance": tol,
                "cases": len(grp),
                "geomean": shifted_geomean(t, s),
                "min": float(t.min()),
                "median": float(t.median()),
                "max": float(t.max()),
                "shift": s,
            }
        )
    out = pd.DataFrame(records)
    best = out.groupby("tolerance")["geomean"].transform("min")
    out["relative"] = out["geomean"] / best
    return out[[*_GROUP, "cases", "geomean", "relative", "min", "median", "max", "shift"]]


def summary_table(
    df: pd.DataFrame, time_limit: float | None = None, shift: float | None = None
) -> pd.DataFrame:
    """One row per solver and tolerance: cases, success rate, shifted geomean time and its ratio."""
    rates = success_rates(df)
    times = runtime_summary(df, time_limit, shift)
    merged = rates.merge(times.drop(columns=["cases"]), on=_GROUP, how="left")
    return merged[[*_GROUP, "cases", "success_rate", "correct_rate", "geomean", "relative", "shift"]]


def performance_ratios(df: pd.DataFrame, time_limit: float | None = None) -> pd.DataFrame:
    """Per (case_id, tolerance, solver): time / best time on that case (inf for a failure).

    Cases on which no solver succeeded are dropped (no best time to compare with).
    """
    rows = attempted(df).copy()
    ok = row_succeeded(rows)
    rows["_t"] = penalized_times(rows, time_limit).where(ok, np.inf)
    best = rows.groupby(["case_id", "tolerance"])["_t"].transform("min")
    rows["ratio"] = rows["_t"] / best
    rows = rows[np.isfinite(best)]
    return rows[["case_id", "tolerance", "solver", "ratio"]].reset_index(drop=True)


def performance_profile(
    df: pd.DataFrame, taus: Sequence[float] | None = None, time_limit: float | None = None
) -> pd.DataFrame:
    """Dolan–Moré profile: per solver, tolerance and tau, the share of cases with ratio <= tau.

    The case set of a tolerance level is every case some solver solved at that level; a solver
    with no successful row on a case (failed, unsupported, absent) counts as ratio = inf there.
    """
    ratios = performance_ratios(df, time_limit)
    if taus is None:
        finite = ratios["ratio"][np.isfinite(ratios["ratio"])]
        top = max(float(finite.max()) if not finite.empty else 1.0, 1.0)
        taus = np.unique(np.concatenate([[1.0], np.geomspace(1.0, top * 1.01, 50)]))
    taus = np.asarray(taus, dtype=float)
    records = []
    solvers = sorted(attempted(df)["solver"].unique())
    for tol, grp in ratios.groupby("tolerance", sort=True):
        cases = grp["case_id"].nunique()
        for solver in solvers:
            mine = grp.loc[grp["solver"] == solver, "ratio"].to_numpy()
            for tau in taus:
                records.append(
                    {
                        "solver": solver,
                        "tolerance": tol,
                        "tau": float(tau),
                        "fraction": float((mine <= tau).sum()) / cases,
                    }
                )
    return pd.DataFrame(records, columns=["solver", "tolerance", "tau", "fraction"])


def amortized(df: pd.DataFrame) -> pd.DataFrame:
    """A copy with per-problem time (s) and throughput (problems/s) computed from the median time."""
    out = df.copy()
    times = pd.to_numeric(out["solve_time_median"], errors="coerce")
    batch = pd.to_numeric(out["batch_size"], errors="coerce")
    out["time_per_problem"] = times / batch
    out["throughput"] = batch / times.where(times > 0)
    return out
