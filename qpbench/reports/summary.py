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
NOT_RUN = (ROW_UNSUPPORTED, ROW_UNAVAILABLE, metrics.SKIPPED)
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
    "n_failed_status", "n_failed_primal", "n_failed_dual", "n_failed_gap",
)  # fmt: skip
TEXT_COLUMNS = ("run_id", "suite", "case_id", "family", "problem", "dtype", "device", "tolerance", "solver",
                "solver_version", "outcome", "error", "expected_status", "multipliers", "problem_errors")  # fmt: skip
# The tests a problem can fail, in the order the report names them (results columns n_failed_*).
CRITERIA = ("status", "primal", "dual", "gap")
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


def compared(rows: pd.DataFrame) -> pd.DataFrame:
    """The rows aggregates compare, typed (:func:`qpbench.metrics.compared`: skipped rows added,
    cases nobody ran left out)."""
    return prepare(metrics.compared(rows)) if not rows.empty else rows


def not_run_text(outcomes: pd.Series) -> str:
    """'2 skipped, 1 unsupported' from the outcomes of a solver's cases that did not run."""
    counts = outcomes[outcomes.isin(NOT_RUN)].value_counts()
    return ", ".join(f"{int(counts[o])} {o}" for o in NOT_RUN if o in counts) or "0"


def success_table(rows: pd.DataFrame, solvers: list[str]) -> list[dict[str, Any]]:
    """Per solver, over the same cases for all (the compared grid): cases run and not run (with
    why), problems, succeeded, failed, success rate over all cases and where run, correct rate,
    and where its multipliers came from."""
    grid = compared(rows)
    rates = metrics.success_rates(rows).set_index("solver") if not rows.empty else pd.DataFrame()
    table = []
    for solver in solvers:
        mine = grid[grid["solver"] == solver] if not grid.empty else grid
        if solver not in rates.index:
            own = rows[rows["solver"] == solver]
            table.append({"solver": solver, "cases_run": 0, "not_run": not_run_text(own["outcome"]),
                          "problems": math.nan, "succeeded": math.nan, "failed": math.nan, "success_rate": math.nan,
                          "success_rate_run": math.nan, "correct_rate": math.nan, "multipliers": ""})  # fmt: skip
            continue
        rate = rates.loc[solver]
        sources = sorted({m for m in mine["multipliers"] if m})
        table.append(
            {
                "solver": solver,
                "cases_run": int(rate["cases_run"]),
                "not_run": not_run_text(mine["outcome"]),
                "problems": int(rate["problems"]),
                "succeeded": int(rate["successes"]),
                "failed": int(rate["problems_run"] - rate["successes"]),
                "success_rate": float(rate["success_rate"]),
                "success_rate_run": float(rate["success_rate_run"]),
                # metrics reads a missing correct_rate as 0; the report shows it as missing instead
                "correct_rate": float(rate["correct_rate"]) if mine["correct_rate"].notna().any() else math.nan,
                "multipliers": ", ".join(sources),
            }
        )
    return table


def criteria_counts(row: Mapping[str, Any]) -> dict[str, int]:
    """Problems of an ok row per failed test (non-zero only): the ``n_failed_*`` columns, or for
    tables written before them, 'status' from the solved count and 'residuals' for the problems
    reported solved that did not succeed (which residual is not recorded there)."""
    recorded = {c: row.get(f"n_failed_{c}") for c in CRITERIA}
    if any(v is not None and pd.notna(v) for v in recorded.values()):
        return {c: int(v) for c, v in recorded.items() if v is not None and pd.notna(v) and v > 0}
    batch, solved, success = (_number(row.get(c)) for c in ("batch_size", "n_solved", "n_success"))
    if str(row.get("expected_status") or "solved") != "solved":
        wrong = batch - _number(row.get("n_expected_status"))
        return {"status": int(wrong)} if wrong > 0 else {}
    counts = {"status": int(batch - solved), "residuals": int(solved - success)}
    return {c: v for c, v in counts.items() if v > 0}


def _number(value: Any) -> float:
    return float(value) if value is not None and pd.notna(value) else 0.0


def failed_tests(row: Mapping[str, Any]) -> str:
    """Which tests a row's failed problems failed, e.g. 'status 1, gap 2' (its outcome when the row
    gave no answer at all)."""
    if row.get("outcome") != ROW_OK:
        return str(row.get("outcome") or "")
    return ", ".join(f"{name} {count}" for name, count in criteria_counts(row).items())


def failed_solvers(frame: pd.DataFrame, solvers: list[str]) -> list[dict[str, Any]]:
    """Per solver with a failed problem anywhere in the table: problems failed / run, the tests
    they failed, and why (statuses, the solver's messages, errors of rows that gave no answer)."""
    ran = metrics.attempted(frame)
    table = []
    for solver in solvers:
        mine = ran[ran["solver"] == solver]
        problems = float(mine["batch_size"].sum())
        failed = problems - float(mine["problems_ok"].sum())
        if mine.empty or failed <= 0:
            continue
        tests: dict[str, int] = {}
        for _, row in mine[mine["outcome"] == ROW_OK].iterrows():
            for name, count in criteria_counts(row).items():
                tests[name] = tests.get(name, 0) + count
        for outcome, rows in mine[mine["outcome"] != ROW_OK].groupby("outcome"):
            tests[str(outcome)] = tests.get(str(outcome), 0) + int(rows["batch_size"].sum())
        order = [*CRITERIA, "residuals", *ATTEMPTED]
        ordered = sorted(tests.items(), key=lambda item: order.index(item[0]) if item[0] in order else len(order))
        table.append(
            {
                "solver": solver,
                "failed": int(failed),
                "problems": int(problems),
                "tests": ", ".join(f"{name} {count}" for name, count in ordered),
                "why": _why(mine),
            }
        )
    return table


def _why(rows: pd.DataFrame) -> str:
    """The statuses other than solved, then the solver's messages with their counts, shortened."""
    statuses = ", ".join(f"{col[2:]} {int(rows[col].sum())}" for col in STATUS_COUNT_COLUMNS if rows[col].sum() > 0)
    counts: dict[str, int] = {}
    for text in [*rows["problem_errors"], *rows.loc[rows["outcome"] != ROW_OK, "error"]]:
        for message, count in message_counts(text).items():
            counts[message] = counts.get(message, 0) + count
    messages = [f"{count} x {short_text(m, 100)}" if count > 1 else short_text(m, 100) for m, count in counts.items()]
    parts = [part for part in (statuses, *messages[:3]) if part]
    return "; ".join(parts) or "answers reported solved, outside the tolerance"


def message_counts(text: str) -> dict[str, int]:
    """A row's messages ("2 x a; b", as qpbench.runner.measure writes problem_errors) as counts."""
    counts: dict[str, int] = {}
    for part in (p.strip() for p in text.split("; ") if p.strip()):
        head, sep, rest = part.partition(" x ")
        count, message = (int(head), rest) if sep and head.isdigit() else (1, part)
        counts[message] = counts.get(message, 0) + count
    return counts


def short_text(text: str, limit: int = 160) -> str:
    """Last line of a message (the point of a traceback), shortened."""
    line = text.strip().splitlines()[-1] if text.strip() else ""
    return line if len(line) <= limit else line[: limit - 3] + "..."


def unrunnable_cases(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Cases (per tolerance) that no solver ran, grouped by the reason they give: what this machine
    cannot run (a CUDA case without a GPU), so every solver's row says the same."""
    if frame.empty:
        return []
    ran = frame["outcome"].isin(ATTEMPTED).groupby([frame["case_id"], frame["tolerance"]]).transform("any")
    idle = frame[~ran]
    out = []
    for reason, rows in idle.groupby(idle["error"].replace("", "(no reason given)"), sort=True):
        out.append({"reason": str(reason), "cases": rows[["case_id", "tolerance"]].drop_duplicates().shape[0],
                    "rows": len(rows), "devices": ", ".join(sorted(set(rows["device"]) - {""}))})  # fmt: skip
    return out


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
    """(per solver: cases (all compared) and cases run, geomean seconds, relative with best = 1.0,
    min/median/max of the penalized times; shift; penalty).

    Empty when no solver succeeded on any case: a ranking of penalties alone means nothing.
    """
    penalty = penalty_time(rows, time_limit)
    shift = metrics.default_shift(rows)
    columns = ["solver", "cases", "cases_run", "geomean", "relative", "min", "median", "max"]
    if not rows["row_ok"].any():
        return pd.DataFrame(columns=columns), shift, penalty
    table = metrics.runtime_summary(rows, time_limit=penalty, shift=shift)
    return table[columns], shift, penalty


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
    """Rows of cases some solver ran that this solver did not (unsupported, unavailable, skipped),
    collapsed to (outcome, reason) with the solvers and the number of rows; cases no solver ran
    are :func:`unrunnable_cases`."""
    grid = metrics.complete_grid(frame)
    if grid.empty:
        return []
    someone_ran = grid["outcome"].isin(ATTEMPTED).groupby([grid["case_id"], grid["tolerance"]]).transform("any")
    skipped = grid[someone_ran & grid["outcome"].isin(NOT_RUN)].fillna({"error": ""})
    out = []
    for (outcome, reason), rows in skipped.groupby(["outcome", "error"], sort=True):
        names = list(dict.fromkeys(rows["solver"]))
        out.append({"outcome": str(outcome), "reason": str(reason), "solvers": names, "rows": len(rows)})
    return out


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
