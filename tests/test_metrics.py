"""Metrics on hand-made results tables, against numbers worked out by hand."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pytest

from qpbench import metrics
from qpbench.results import COLUMNS


def row(solver: str, case: str, time: float | None, success: int | None, outcome: str = "ok", **extra: Any) -> dict:
    base = {col: None for col in COLUMNS}
    base.update(
        solver=solver,
        case_id=case,
        tolerance="mid",
        outcome=outcome,
        batch_size=1,
        solve_time_median=time,
        n_success=success,
        correct_rate=1.0 if outcome == "ok" else None,
        expected_status="solved",
    )
    base.update(extra)
    return base


@pytest.fixture
def table() -> pd.DataFrame:
    """A: fast on c1, c2, fails c3.  B: slower on c1, inaccurate on c2, only one to solve c3."""
    return pd.DataFrame(
        [
            row("A", "c1", 1.0, 1),
            row("A", "c2", 2.0, 1),
            row("A", "c3", None, None, outcome="failed"),
            row("A", "c4", None, None, outcome="unsupported"),
            row("B", "c1", 2.0, 1),
            row("B", "c2", 1.0, 0, correct_rate=0.0),
            row("B", "c3", 4.0, 1),
        ]
    )


def test_shifted_geomean_by_hand() -> None:
    assert metrics.shifted_geomean([1.0, 100.0], shift=0.0) == pytest.approx(10.0)
    # (2 * 3 * 11) ** (1/3) - 1
    assert metrics.shifted_geomean([1.0, 2.0, 10.0], shift=1.0) == pytest.approx(66 ** (1 / 3) - 1)
    assert math.isnan(metrics.shifted_geomean([], shift=1.0))
    with pytest.raises(ValueError, match="shift"):
        metrics.shifted_geomean([1.0], shift=-1.0)
    with pytest.raises(ValueError, match="values"):
        metrics.shifted_geomean([-1.0], shift=1.0)


def test_penalized_times_count_failures_as_the_time_limit(table: pd.DataFrame) -> None:
    rows = metrics.attempted(table)
    got = metrics.penalized_times(rows, time_limit=10.0).tolist()
    assert got == [1.0, 2.0, 10.0, 2.0, 10.0, 4.0]
    with pytest.raises(ValueError, match="time_limit"):
        metrics.penalized_times(rows)
    per_row = rows.assign(time_limit=[5.0] * len(rows))
    assert metrics.penalized_times(per_row).tolist() == [1.0, 2.0, 5.0, 2.0, 5.0, 4.0]


def with_c4_run(table: pd.DataFrame) -> pd.DataFrame:
    """The fixture plus solver C, which ran c4 only (1 s, solved): now someone ran c4."""
    return pd.concat([table, pd.DataFrame([row("C", "c4", 3.0, 1)])], ignore_index=True)


def test_success_rates_keep_cases_not_run_in_the_denominator(table: pd.DataFrame) -> None:
    # c4: A unsupported, B has no row (skipped), C ran it; all three are compared on all four cases.
    rates = metrics.success_rates(with_c4_run(table)).set_index("solver")
    assert (rates["cases"] == 4).all()
    assert rates.loc["A", "cases_run"] == 3 and rates.loc["B", "cases_run"] == 3 and rates.loc["C", "cases_run"] == 1
    assert rates.loc["A", "success_rate"] == pytest.approx(2 / 4)
    assert rates.loc["B", "success_rate"] == pytest.approx(2 / 4)
    assert rates.loc["C", "success_rate"] == pytest.approx(1 / 4) and rates.loc["C", "success_rate_run"] == 1.0
    assert rates.loc["A", "success_rate_run"] == pytest.approx(2 / 3)
    assert rates.loc["A", "correct_rate"] == pytest.approx(2 / 3)  # of the problems run; the failed row is not correct
    assert rates.loc["B", "correct_rate"] == pytest.approx(2 / 3)


def test_a_case_no_solver_ran_is_left_out(table: pd.DataFrame) -> None:
    # In the fixture nobody ran c4 (A unsupported, B no row): it compares nobody.
    rates = metrics.success_rates(table).set_index("solver")
    assert (rates["cases"] == 3).all() and rates.loc["A", "success_rate"] == pytest.approx(2 / 3)
    assert "c4" not in set(metrics.compared(table)["case_id"])


def test_complete_grid_adds_skipped_rows_with_the_case_description(table: pd.DataFrame) -> None:
    table = table.assign(batch_size=[1, 1, 1, 8, 1, 1, 1], n=10)  # c4 holds 8 problems
    grid = metrics.complete_grid(table)
    added = grid.iloc[len(table) :]
    assert len(added) == 1
    skipped = added.iloc[0]
    assert (skipped["solver"], skipped["case_id"], skipped["outcome"]) == ("B", "c4", metrics.SKIPPED)
    assert skipped["batch_size"] == 8 and skipped["n"] == 10 and skipped["error"] == metrics.SKIPPED_REASON
    assert metrics.complete_grid(grid).shape == grid.shape  # nothing more to add


def test_a_solver_that_ran_no_case_gets_no_numbers(table: pd.DataFrame) -> None:
    absent = pd.DataFrame([row("C", case, None, None, outcome="unavailable") for case in ("c1", "c2", "c3", "c4")])
    both = pd.concat([table, absent], ignore_index=True)
    assert set(metrics.success_rates(both)["solver"]) == {"A", "B"}
    assert set(metrics.runtime_summary(both, time_limit=10.0, shift=1.0)["solver"]) == {"A", "B"}
    assert set(metrics.performance_ratios(both, time_limit=10.0)["solver"]) == {"A", "B"}


def test_runtime_summary_normalizes_best_to_one(table: pd.DataFrame) -> None:
    summary = metrics.runtime_summary(with_c4_run(table), time_limit=10.0, shift=1.0).set_index("solver")
    a = 726 ** (1 / 4) - 1  # A: penalized [1, 2, 10 (failed), 10 (unsupported)], each + 1
    b = 1815 ** (1 / 4) - 1  # B: penalized [2, 10 (inaccurate), 4, 10 (skipped)], each + 1
    c = 5324 ** (1 / 4) - 1  # C: penalized [10, 10, 10 (skipped), 3], each + 1
    assert summary.loc["A", "geomean"] == pytest.approx(a)
    assert summary.loc["B", "geomean"] == pytest.approx(b)
    assert summary.loc["C", "geomean"] == pytest.approx(c)
    assert summary.loc["A", "relative"] == 1.0
    assert summary.loc["B", "relative"] == pytest.approx(b / a)
    assert summary.loc["B", "min"] == 2.0 and summary.loc["B", "max"] == 10.0 and summary.loc["B", "median"] == 7.0
    assert summary.loc["A", "cases"] == 4 and summary.loc["A", "cases_run"] == 3


def test_default_shift_is_a_tenth_of_the_median_successful_time(table: pd.DataFrame) -> None:
    # successful times: A 1, 2; B 2, 4 -> median 2
    assert metrics.default_shift(table) == pytest.approx(0.2)
    nothing = table.assign(outcome="failed")
    assert metrics.default_shift(nothing) == 1e-3


def test_performance_profile_by_hand(table: pd.DataFrame) -> None:
    ratios = metrics.performance_ratios(table, time_limit=10.0)
    got = {(r.case_id, r.solver): r.ratio for r in ratios.itertuples()}
    assert got == {
        ("c1", "A"): 1.0,
        ("c1", "B"): 2.0,
        ("c2", "A"): 1.0,
        ("c2", "B"): np.inf,
        ("c3", "A"): np.inf,
        ("c3", "B"): 1.0,
    }
    profile = metrics.performance_profile(table, taus=[1.0, 1.5, 2.0], time_limit=10.0)
    frac = {(r.solver, r.tau): r.fraction for r in profile.itertuples()}
    assert frac[("A", 1.0)] == pytest.approx(2 / 3) and frac[("B", 1.0)] == pytest.approx(1 / 3)
    assert frac[("B", 1.5)] == pytest.approx(1 / 3) and frac[("B", 2.0)] == pytest.approx(2 / 3)
    assert frac[("A", 2.0)] == pytest.approx(2 / 3)


def test_a_batch_succeeds_only_when_every_problem_does() -> None:
    df = pd.DataFrame(
        [
            row("A", "b", 2.0, 3, batch_size=4),
            row("A", "b4", 2.0, 4, batch_size=4),
            # a deliberately infeasible case: success = reporting the intended status
            row("A", "inf", 1.0, 0, expected_status="primal_infeasible", n_expected_status=1),
        ]
    )
    assert metrics.row_succeeded(df).tolist() == [False, True, True]
    assert metrics.problem_successes(df).tolist() == [3.0, 4.0, 1.0]
    assert metrics.penalized_times(df, time_limit=10.0).tolist() == [10.0, 2.0, 1.0]
    rates = metrics.success_rates(df)
    assert rates.loc[0, "success_rate"] == pytest.approx(8 / 9)


def test_amortized_time_and_throughput() -> None:
    df = pd.DataFrame([row("A", "b", 2.0, 4, batch_size=4)])
    out = metrics.amortized(df)
    assert out.loc[0, "time_per_problem"] == 0.5 and out.loc[0, "throughput"] == 2.0


def test_summary_table_joins_rates_and_times(table: pd.DataFrame) -> None:
    summary = metrics.summary_table(table, time_limit=10.0, shift=1.0)
    assert list(summary["solver"]) == ["A", "B"]
    assert list(summary.columns) == [
        "solver",
        "tolerance",
        "cases",
        "cases_run",
        "success_rate",
        "success_rate_run",
        "correct_rate",
        "geomean",
        "relative",
        "shift",
    ]
    empty = metrics.summary_table(table[table["outcome"] == "unsupported"], time_limit=10.0)
    assert empty.empty
