"""Summary metrics over the results table (pure functions of a DataFrame; no solver imports).

Used by ``qpbench run``'s closing summary, the reports and the regression check. The input is the
table of :func:`qpbench.results.load_table` (or any frame with the same columns).

Definitions (docs/solvers.md and docs/architecture.md, "Measurement rules"):

* **Same cases for every solver.** The cases of a tolerance level (of one suite) are every
  case_id with a row at that level; every solver in the table is compared on all of them. A case
  a solver did not run is **not run**: "unsupported" or "unavailable" rows, and "skipped" where
  the table has no row at all for that solver and case (the suite left the solver out there;
  :func:`complete_grid` adds those rows). A not-run case stays in every denominator: it is not a
  success, it costs the penalty time, and its performance ratio is infinite; the tables say how
  many cases each solver did not run. A case no solver ran (a CUDA case on a machine without a
  GPU) is no comparison and is left out; a solver that ran none of a level's cases gets no
  numbers there at all: there is nothing to compare.
* A row is **attempted** when its outcome is ok / failed / timeout / crashed / oom.
* A problem is a **success** when the solver said solved and all three residuals are within the
  tolerance (``n_success``; with recovered multipliers for a solver that returns z only). For a
  case whose generator makes deliberately infeasible or unbounded problems (``expected_status``
  not 'solved'), success means reporting that status (``n_expected_status``).
* A row (one batch solve) **succeeds** when every problem of its batch does: the batch call is
  what a user waits for, so a batch with one failed problem did not deliver.
* **Failure-penalized runtime**: the row's median solve time if it succeeded, else (failed or not
  run) the time limit.
* **Shifted geometric mean** ``exp(mean(log(t + s))) - s``. The shift keeps tiny times from
  dominating the mean; it must match the times measured (qpbenchmark's 10 s suits second-scale
  solves, not these millisecond ones). By default ``s`` is 10 % of the median successful solve
  time in the table, floored at 1 µs: scale-free, and the same shift for every solver compared.
* **Performance profile** (Dolan and Moré 2002): per case and tolerance, each solver's ratio of
  time to the best time of any solver on that case (a failure or a case not run is an infinite
  ratio); the profile is the share of cases with ratio <= tau.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

ATTEMPTED = ("ok", "failed", "timeout", "crashed", "oom")
SKIPPED = "skipped"  # no row: the suite did not select this solver for this case (added by complete_grid)
NOT_RUN = ("unsupported", "unavailable", SKIPPED)
SKIPPED_REASON = "not selected for this case by the suite"
DEFAULT_SHIFT_FRACTION = 0.1
MIN_SHIFT = 1e-6
_GROUP = ["solver", "tolerance"]
# What a row says about its case, copied into the rows complete_grid adds.
_CASE_COLUMNS = ("run_id", "suite", "case_id", "family", "problem", "n", "m", "k", "batch_size", "seed", "dtype",
                 "device", "tolerance", "tolerance_eps", "expected_status", "reference", "time_limit")  # fmt: skip


def attempted(df: pd.DataFrame) -> pd.DataFrame:
    """Rows where the solver ran (or tried to): outcome ok / failed / timeout / crashed / oom."""
    return df[df["outcome"].isin(ATTEMPTED)]


def complete_grid(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` plus one "skipped" row for every (case, tolerance) and solver that has no row.

    Per suite (when the table says), the solvers are those with a row in that suite and the
    cases of a tolerance level are the case_ids with a row at that level; an added row copies its
    case's description (sizes, batch size, time limit) and has outcome ``SKIPPED``.
    """
    if df.empty:
        return df
    suites = df["suite"].fillna("") if "suite" in df.columns else pd.Series("", index=df.index)
    added = []
    for _, rows in df.groupby(suites, sort=False):
        solvers = list(dict.fromkeys(rows["solver"]))
        for _, case in rows.groupby(["case_id", "tolerance"], sort=False):
            missing = [s for s in solvers if s not in set(case["solver"])]
            if not missing:
                continue
            template = case.iloc[0]
            for solver in missing:
                new = {col: template[col] for col in _CASE_COLUMNS if col in df.columns}
                new.update(solver=solver, outcome=SKIPPED, error=SKIPPED_REASON)
                added.append(new)
    if not added:
        return df
    return pd.concat([df, pd.DataFrame(added, columns=df.columns)], ignore_index=True)


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


def compared(df: pd.DataFrame) -> pd.DataFrame:
    """The rows every aggregate is computed on: the complete grid, less the cases no solver ran
    (a CUDA case on a machine without a GPU compares nobody) and the (solver, tolerance) pairs
    that ran no case at all."""
    grid = complete_grid(df)
    if grid.empty:
        return grid
    run = grid["outcome"].isin(ATTEMPTED)
    someone_ran = run.groupby([grid["case_id"], grid["tolerance"]]).transform("any")
    grid, run = grid[someone_ran], run[someone_ran]
    ran_something = run.groupby([grid[c] for c in _GROUP]).transform("any")
    return grid[ran_something]


def success_rates(df: pd.DataFrame) -> pd.DataFrame:
    """Per solver and tolerance, over the same cases for every solver (see the module docstring).

    ``cases`` / ``problems``: all of the level's; ``cases_run`` / ``problems_run``: those the
    solver attempted; ``success_rate`` = successes / problems, ``success_rate_run`` = successes /
    problems_run; ``correct_rate``: share of the problems run where the solver's 'solved' flag
    agrees with the residual check. A solver that ran none of a level's cases is left out.
    """
    rows = compared(df).copy()
    columns = [*_GROUP, "cases", "cases_run", "problems", "problems_run", "successes", "success_rate",
               "success_rate_run", "correct_rate"]  # fmt: skip
    if rows.empty:
        return pd.DataFrame(columns=columns)
    run = rows["outcome"].isin(ATTEMPTED)
    rows["_success"] = problem_successes(rows)
    rows["_batch"] = pd.to_numeric(rows["batch_size"]).astype(float)
    rows["_run"] = run.astype(int)
    rows["_batch_run"] = rows["_batch"].where(run, 0.0)
    correct = pd.to_numeric(rows["correct_rate"], errors="coerce").fillna(0.0)
    rows["_correct"] = correct.where(rows["outcome"] == "ok", 0.0) * rows["_batch"]
    out = rows.groupby(_GROUP, sort=True).agg(
        cases=("case_id", "size"),
        cases_run=("_run", "sum"),
        problems=("_batch", "sum"),
        problems_run=("_batch_run", "sum"),
        successes=("_success", "sum"),
        correct=("_correct", "sum"),
    )
    out["success_rate"] = out["successes"] / out["problems"]
    out["success_rate_run"] = out["successes"] / out["problems_run"]
    out["correct_rate"] = out["correct"] / out["problems_run"]
    return out.reset_index()[columns]


def runtime_summary(
    df: pd.DataFrame, time_limit: float | None = None, shift: float | None = None
) -> pd.DataFrame:
    """Per solver and tolerance: shifted geomean of failure-penalized times over the level's cases
    (a case not run counts as a failure), and relative to the best.

    ``relative`` is 1.0 for the fastest solver at each tolerance level. Also returns the shift used
    and the spread (min, median, max) of the penalized times beside the summary.
    """
    columns = [*_GROUP, "cases", "cases_run", "geomean", "relative", "min", "median", "max", "shift"]
    rows = compared(df).copy()
    if rows.empty:
        return pd.DataFrame(columns=columns)
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
                "cases_run": int(grp["outcome"].isin(ATTEMPTED).sum()),
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
    return out[columns]


def summary_table(
    df: pd.DataFrame, time_limit: float | None = None, shift: float | None = None
) -> pd.DataFrame:
    """One row per solver and tolerance: cases (all / run), success rates, shifted geomean and its ratio."""
    rates = success_rates(df)
    times = runtime_summary(df, time_limit, shift)
    merged = rates.merge(times.drop(columns=["cases", "cases_run"]), on=_GROUP, how="left")
    return merged[[*_GROUP, "cases", "cases_run", "success_rate", "success_rate_run", "correct_rate", "geomean",
                   "relative", "shift"]]  # fmt: skip


def performance_ratios(df: pd.DataFrame, time_limit: float | None = None) -> pd.DataFrame:
    """Per (case_id, tolerance, solver): time / best time on that case (inf for a failure or a case
    not run). Cases on which no solver succeeded are dropped (no best time to compare with)."""
    rows = compared(df).copy()
    if rows.empty:
        return pd.DataFrame(columns=["case_id", "tolerance", "solver", "ratio"])
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
    with no successful row on a case (failed, unsupported, unavailable, skipped) counts as
    ratio = inf there.
    """
    ratios = performance_ratios(df, time_limit)
    if taus is None:
        finite = ratios["ratio"][np.isfinite(ratios["ratio"])]
        top = max(float(finite.max()) if not finite.empty else 1.0, 1.0)
        taus = np.unique(np.concatenate([[1.0], np.geomspace(1.0, top * 1.01, 50)]))
    taus = np.asarray(taus, dtype=float)
    records = []
    for (tol, solver), grp in ratios.groupby(["tolerance", "solver"], sort=True):
        cases = ratios.loc[ratios["tolerance"] == tol, "case_id"].nunique()
        mine = grp["ratio"].to_numpy()
        for tau in taus:
            records.append(
                {"solver": solver, "tolerance": tol, "tau": float(tau), "fraction": float((mine <= tau).sum()) / cases}
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
