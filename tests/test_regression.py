"""The regression check on synthetic results tables built here (no solver runs)."""

from __future__ import annotations

import json
import math
import random
import statistics
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from qpbench.cli import main as cli_main
from qpbench.regression import (
    PAIRED_PROMISE,
    UNPAIRED_PROMISE,
    CompareOptions,
    Estimate,
    Promise,
    Verdict,
    compare_tables,
    environment_notes,
)
from qpbench.results import COLUMNS, write_environment, write_row

SIZES = [(10, 10), (20, 20), (50, 50), (100, 50), (50, 100), (200, 100)]


def make_row(case: int, solver: str = "inhouse", **overrides: Any) -> dict[str, Any]:
    """A complete, healthy row of case ``case`` (solve time grows with the case's size)."""
    n, m = SIZES[case % len(SIZES)]
    batch = 1 if case < len(SIZES) else 64
    solve = 1e-3 * (1 + case) * (2.0 if solver != "inhouse" else 1.0)
    row: dict[str, Any] = dict.fromkeys(COLUMNS)
    row.update(
        run_id="r1",
        suite="ci",
        case_id=f"optnet_random-n{n}-m{m}-k0-B{batch}-s{case}-float64-cpu",
        family="optnet_random",
        problem="",
        n=n,
        m=m,
        k=0,
        batch_size=batch,
        seed=case,
        dtype="float64",
        device="cpu",
        tolerance="high",
        tolerance_eps=1e-9,
        solver=solver,
        outcome="ok",
        error="",
        repeats=5,
        warmups=1,
        solve_time_median=solve,
        solve_time_min=solve,
        solve_time_max=solve,
        iterations_mean=12.0,
        iterations_max=14,
        n_solved=batch,
        n_success=batch,
        n_expected_status=batch,
        expected_status="solved",
        success_rate=1.0,
        correct_rate=1.0,
        primal_res_max=1e-12,
        dual_res_max=1e-11,
        gap_max=1e-10,
        obj_rel_err_max=1e-11,
        grad_err_max=1e-7,
        calibration_time=2e-4 * (1 + case),
        work_iterations=12,
        work_factorizations=13 * batch,
        work_solves=26 * batch,
        work_products=13 * batch,
    )
    row.update({c: 0 for c in COLUMNS if c.startswith("n_") and row[c] is None})
    row.update(overrides)
    return row


def make_table(cases: int = 12, with_reference_solver: bool = False) -> pd.DataFrame:
    rows = [make_row(i) for i in range(cases)]
    if with_reference_solver:
        rows += [make_row(i, solver="qpth") for i in range(cases)]
    return pd.DataFrame(rows, columns=list(COLUMNS))


def jittered(
    table: pd.DataFrame, rng: random.Random, amount: float = 0.10, slowdown: float = 1.0
) -> pd.DataFrame:
    """Every time scaled by 1 +/- ``amount`` per repeat (5 repeats), spreads recorded to match."""
    out = table.copy()
    for i in out.index:
        factor = slowdown if out.at[i, "solver"] == "inhouse" else 1.0
        true_time = out.at[i, "solve_time_median"] * factor
        repeats = sorted(true_time * rng.uniform(1 - amount, 1 + amount) for _ in range(5))
        out.at[i, "solve_time_min"], out.at[i, "solve_time_median"], out.at[i, "solve_time_max"] = (
            repeats[0],
            repeats[2],
            repeats[-1],
        )
        out.at[i, "calibration_time"] *= rng.uniform(1 - amount, 1 + amount)
    return out


def set_value(
    table: pd.DataFrame, case: int, column: str, value: Any, solver: str = "inhouse"
) -> pd.DataFrame:
    out = table.copy()
    mask = (out["seed"] == case) & (out["solver"] == solver)
    assert mask.sum() == 1
    out[column] = out[column].astype(object)
    out.loc[mask, column] = value
    return out


def case_id(case: int) -> str:
    return make_row(case)["case_id"]


# ----------------------------------------------------------------------------- the decision rule


@pytest.mark.parametrize("promise", [1.25, 1.5, 2.0])
def test_small_noise_gives_the_plain_comparison_with_the_midpoint(promise: float) -> None:
    limit = math.sqrt(promise)
    small = math.log(promise) / 2  # the largest half-width that is always conclusive
    for change in (0.8, 1.0, limit * 0.99, limit * 1.01, promise, 2 * promise):
        verdict = Estimate(math.log(change), small, promise).verdict
        assert verdict is (Verdict.REGRESSION if change > limit else Verdict.PASS), (change, verdict)


def test_large_noise_is_inconclusive_but_a_clear_slowdown_still_fails() -> None:
    wide = 1.5 * math.log(1.25)  # three times the largest half-width that is always conclusive
    assert Estimate(0.0, wide, 1.25).verdict is Verdict.INCONCLUSIVE
    assert Estimate(math.log(1.2), wide, 1.25).verdict is Verdict.INCONCLUSIVE
    assert Estimate(math.log(3.0), wide, 1.25).verdict is Verdict.REGRESSION  # interval excludes 1x
    assert Estimate(math.log(0.7), wide, 1.25).verdict is Verdict.PASS  # interval excludes 1.25x


@pytest.mark.parametrize("promise", [PAIRED_PROMISE, UNPAIRED_PROMISE])
def test_no_limit_exceeds_the_promise_and_two_x_never_passes(promise: Promise) -> None:
    for size in (promise.suite, promise.case):
        assert Estimate(0.0, 0.0, size).limit < size
        for half_width in (0.0, 0.1, 0.5, 2.0, math.inf):
            assert Estimate(math.log(2.0), half_width, size).verdict is not Verdict.PASS


@pytest.mark.parametrize("bad", [1.0, 0.9, -2.0])
def test_promise_must_be_a_slowdown(bad: float) -> None:
    with pytest.raises(ValueError, match="promise suite"):
        Promise(suite=bad, case=2.0)


# ----------------------------------------------------------------------------- verdicts


def test_table_compared_with_itself_passes() -> None:
    table = make_table(with_reference_solver=True)
    result = compare_tables(table, table.copy())
    assert result.verdict is Verdict.PASS, result.render()
    assert result.regressions == [] and result.mode == "unpaired"
    assert len(result.cases) == 12  # only the judged solver's rows are cases
    assert result.aggregate is not None and result.aggregate.change == pytest.approx(1.0)
    text = result.render()
    assert "VERDICT: PASS" in text and "promise 1.5x suite, 2x single case, unpaired" in text


def test_doubled_time_ratio_fails_naming_case_and_metric() -> None:
    base = make_table()
    slow = doubled(base, 3)
    result = compare_tables(base, slow)
    assert result.verdict is Verdict.REGRESSION
    assert [(r.metric, case_id(3) in r.case) for r in result.regressions] == [("time_change", True)]
    assert result.regressions[0].current == pytest.approx(2.0)
    assert "time_change" in result.render() and "REGRESSION" in result.render()


def test_machine_twice_as_slow_overall_is_not_a_regression() -> None:
    base = make_table()
    slow = base.copy()
    for column in ("solve_time_median", "solve_time_min", "solve_time_max", "calibration_time"):
        slow[column] = 2 * slow[column]
    result = compare_tables(base, slow)
    assert result.ok, result.render()
    assert result.aggregate is not None and result.aggregate.change == pytest.approx(1.0)
    assert all(c.speed is not None for c in result.cases)  # judged on speed, not passed for want of a reference


def test_timings_of_several_machines_are_never_pooled() -> None:
    """A table of a run on two machines is compared one machine at a time: without --machine the
    comparison is refused naming both, with it only that machine's rows count (here the other
    machine is twice as slow, which pooled would read as a regression)."""
    base = make_table()
    fast, slow = base.assign(machine="cpu A (2 cores)"), doubled(base, 3).assign(machine="cpu B (8 cores)")
    both = pd.concat([slow, fast], ignore_index=True)
    with pytest.raises(ValueError, match=r"2 machines .*cpu A \(2 cores\); cpu B \(8 cores\).*--machine"):
        compare_tables(base, both)
    result = compare_tables(base, both, CompareOptions(machine="cpu A"))
    assert result.verdict is Verdict.PASS, result.render()
    assert any("cpu A (2 cores) only" in note for note in result.notes)
    assert compare_tables(base, both, CompareOptions(machine="cpu B")).verdict is Verdict.REGRESSION
    with pytest.raises(ValueError, match="--machine 'cpu' must name exactly one machine"):
        compare_tables(base, both, CompareOptions(machine="cpu"))


def test_success_rate_drop_fails() -> None:
    base = make_table()
    worse = set_value(base, 7, "success_rate", 0.9)
    worse = set_value(worse, 7, "n_success", 58)
    result = compare_tables(base, worse)
    assert [(r.metric, r.baseline, r.current) for r in result.regressions] == [("success_rate", 1.0, 0.9)]
    assert case_id(7) in result.regressions[0].case


def test_residual_grown_past_tolerance_fails() -> None:
    base = make_table()
    worse = set_value(base, 2, "dual_res_max", 3e-8)  # eps is 1e-9 at tolerance "high"
    result = compare_tables(base, worse)
    assert [r.metric for r in result.regressions] == ["dual_res_max"]
    assert case_id(2) in result.regressions[0].case


def test_residual_below_tolerance_may_grow() -> None:
    base = make_table()
    assert compare_tables(base, set_value(base, 2, "dual_res_max", 5e-10)).ok


def test_residual_already_above_tolerance_fails_only_past_tenfold() -> None:
    base = set_value(make_table(), 4, "gap_max", 1e-8)
    assert compare_tables(base, set_value(base, 4, "gap_max", 9e-8)).ok
    result = compare_tables(base, set_value(base, 4, "gap_max", 2e-7))
    assert [r.metric for r in result.regressions] == ["gap_max"]


def test_objective_and_gradient_errors_are_judged() -> None:
    base = make_table()
    worse = set_value(base, 1, "obj_rel_err_max", 1e-6)
    worse = set_value(worse, 5, "grad_err_max", 1e-2)
    metrics = sorted(r.metric for r in compare_tables(base, worse).regressions)
    assert metrics == ["grad_err_max", "obj_rel_err_max"]


@pytest.mark.parametrize("outcome", ["crashed", "timeout"])
def test_outcome_ok_to_not_ok_fails(outcome: str) -> None:
    base = make_table()
    worse = set_value(base, 0, "outcome", outcome)
    worse = set_value(worse, 0, "error", "worker died: SIGSEGV")
    result = compare_tables(base, worse)
    assert [r.metric for r in result.regressions] == ["outcome"]
    assert "SIGSEGV" in result.regressions[0].message


def test_more_failed_statuses_fail() -> None:
    base = make_table()
    worse = set_value(base, 8, "n_expected_status", 61)
    worse = set_value(worse, 8, "n_max_iter", 3)
    result = compare_tables(base, worse)
    assert [r.metric for r in result.regressions] == ["status"]
    assert "max_iter 0 -> 3" in result.regressions[0].message


def test_iteration_growth_past_margin_fails() -> None:
    base = make_table()
    assert compare_tables(base, set_value(base, 6, "iterations_mean", 15.0)).ok  # 12 -> 15 is within margin
    result = compare_tables(base, set_value(base, 6, "iterations_mean", 20.0))
    assert [r.metric for r in result.regressions] == ["iterations_mean"]


# ----------------------------------------------------------------------------- work counts


def test_one_more_factorization_is_a_regression_whatever_the_clock_says() -> None:
    base = make_table()
    worse = set_value(base, 9, "work_factorizations", base.loc[9, "work_factorizations"] + 1)
    result = compare_tables(base, worse)
    assert [(r.metric, case_id(9) in r.case) for r in result.regressions] == [("work_factorizations", True)]
    assert "counts must not grow" in result.regressions[0].message
    loose = compare_tables(base, worse, CompareOptions(work_tolerance=0.01))
    assert loose.ok, loose.render()


def test_less_work_passes_with_a_note_to_regenerate_the_baseline() -> None:
    base = make_table()
    result = compare_tables(base, set_value(base, 2, "work_solves", 1))
    assert result.ok
    assert any("less work" in note and "regenerate the baseline" in note for note in result.notes)


def test_work_counts_missing_from_the_baseline_are_a_note() -> None:
    base = make_table()
    older = base.copy()
    for column in ("work_iterations", "work_factorizations", "work_solves", "work_products"):
        older[column] = None
    result = compare_tables(older, base)
    assert result.ok
    assert any("not in the baseline" in note for note in result.notes)


# ----------------------------------------------------------------------------- unpaired noise


@pytest.mark.parametrize("seed", range(10))
def test_five_percent_jitter_passes(seed: int) -> None:
    # The median-based model's intervals are wide by design (summed noise, for load that changes
    # between a case's timings and its references'), so at +-10 % a single case can be inconclusive.
    rng = random.Random(seed)
    table = make_table()
    result = compare_tables(jittered(table, rng, amount=0.05), jittered(table, rng, amount=0.05))
    assert result.verdict is Verdict.PASS, result.render()
    assert all(c.speed is not None for c in result.cases)  # speed was judged


@pytest.mark.parametrize("seed", range(5))
def test_uniform_one_and_a_half_slowdown_is_caught_under_jitter(seed: int) -> None:
    rng = random.Random(100 + seed)
    table = make_table()
    result = compare_tables(jittered(table, rng), jittered(table, rng, slowdown=1.5))
    assert result.verdict is Verdict.REGRESSION, result.render()
    assert "time_change_geomean" in [r.metric for r in result.regressions]
    assert result.aggregate is not None and result.aggregate.change == pytest.approx(1.5, rel=0.1)


def test_noise_too_large_for_the_promise_is_inconclusive_and_pooling_runs_resolves_it() -> None:
    rng = random.Random(7)
    table = make_table()
    noisy = [jittered(table, rng, amount=0.6) for _ in range(4)]
    first = compare_tables(table, noisy[0])
    assert first.verdict is Verdict.INCONCLUSIVE, first.render()
    assert first.inconclusive_reasons() and "INCONCLUSIVE" in first.render()
    estimates = [c.speed.estimate for c in first.cases if c.speed is not None]
    assert any(e.high > e.promise for e in estimates)  # an interval reaches past its promise
    pooled = compare_tables(table, noisy)
    assert pooled.runs == 4
    assert pooled.aggregate is not None and pooled.aggregate.half_width < first.aggregate.half_width


def test_reference_solver_in_the_same_run_can_replace_calibration() -> None:
    table = make_table(with_reference_solver=True)
    table["calibration_time"] = None  # no calibration kernel recorded
    options = CompareOptions(references=("qpth",))
    assert compare_tables(table, table.copy(), options).ok
    result = compare_tables(table, _scaled(table, 1.6, solver="inhouse"), options)
    assert "time_change_geomean" in [r.metric for r in result.regressions]


def test_calibration_straying_from_the_machine_factor_moves_nothing() -> None:
    base = make_table()
    # One case's calibration kernel ran 100x faster in the current run (it had been stalled by
    # load in the baseline's moment), while every other case's stayed put. The reference's change
    # is one machine factor (the median over the cases), so that case's change stays 1.
    current = set_value(base, 3, "calibration_time", base.loc[3, "calibration_time"] / 100)
    result = compare_tables(base, current, CompareOptions(references=("calibration",)))
    assert result.ok, result.render()
    stray = next(c for c in result.cases if case_id(3) in c.case)
    assert stray.speed is not None and stray.speed.estimate.change == pytest.approx(1.0)
    caught = compare_tables(base, doubled(current, 3), CompareOptions(references=("calibration",)))
    assert any(case_id(3) in r.case for r in caught.regressions), caught.render()


def test_auto_references_use_calibration_and_the_other_solvers() -> None:
    table = make_table(with_reference_solver=True)
    result = compare_tables(table, table.copy())
    assert {c.speed.basis for c in result.cases if c.speed} == {"vs calibration+qpth"}
    only_calibration = compare_tables(table, table.copy(), CompareOptions(references=("calibration",)))
    assert {c.speed.basis for c in only_calibration.cases if c.speed} == {"vs calibration"}


def test_nothing_timed_is_inconclusive_not_a_pass() -> None:
    table = make_table()
    table["calibration_time"] = None
    result = compare_tables(table, table.copy())
    assert result.verdict is Verdict.INCONCLUSIVE
    assert all(c.speed is None for c in result.cases)
    assert "no case could be timed" in result.render()
    assert compare_tables(table, table.copy(), CompareOptions(speed=False)).ok  # unless speed is not asked for


# ----------------------------------------------------------------------------- paired tables


def paired_tables(
    slowdown: float = 1.0, sigma: float = 0.15, pairs: int = 24, cases: int = 5, seed: int = 0, tail: float = 0.1
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Tables as a paired session writes them: per pair one machine factor shared by both builds
    (load up to 2x), lognormal scatter ``sigma`` per solve and a share ``tail`` of solves hit 3x."""
    rng = random.Random(seed)
    base_rows, cur_rows = [], []
    for case in range(cases):
        truth = 1e-2 * (1 + case)
        b_times, c_times = [], []
        for _ in range(pairs):
            machine = rng.choice((1.0, 2.0))
            for out, factor in ((b_times, 1.0), (c_times, slowdown)):
                hit = 3.0 if rng.random() < tail else 1.0
                out.append(truth * factor * machine * hit * math.exp(rng.gauss(0.0, sigma)))
        for rows, series in ((base_rows, b_times), (cur_rows, c_times)):
            ordered = sorted(series)
            rows.append(make_row(case, pairing="s1", solve_times=series, solve_time_min=ordered[0],
                                 solve_time_median=ordered[len(ordered) // 2], solve_time_max=ordered[-1],
                                 calibration_time=None, worker="paired"))
    return pd.DataFrame(base_rows, columns=list(COLUMNS)), pd.DataFrame(cur_rows, columns=list(COLUMNS))


@pytest.mark.parametrize("seed", range(5))
def test_paired_unchanged_passes_despite_a_machine_that_doubles_at_random(seed: int) -> None:
    base, cur = paired_tables(seed=seed)
    result = compare_tables(base, cur)
    assert result.mode == "paired" and result.promise == PAIRED_PROMISE
    assert result.verdict is Verdict.PASS, result.render()
    assert "promise 1.25x suite, 1.5x single case, paired" in result.render()


@pytest.mark.parametrize("seed", range(5))
def test_paired_slowdown_of_the_promised_size_is_caught(seed: int) -> None:
    result = compare_tables(*paired_tables(slowdown=1.25, seed=seed))
    assert result.verdict is Verdict.REGRESSION, result.render()
    assert "time_change_geomean" in [r.metric for r in result.regressions]


def test_paired_noise_beyond_the_promise_is_inconclusive_never_a_pass_of_two_x() -> None:
    wild = compare_tables(*paired_tables(sigma=1.0, pairs=10))
    assert wild.verdict is Verdict.INCONCLUSIVE, wild.render()
    for seed in range(5):
        slowed = compare_tables(*paired_tables(slowdown=2.0, sigma=1.5, pairs=10, seed=seed))
        assert slowed.verdict is not Verdict.PASS, slowed.render()


def test_only_a_regression_found_by_the_clock_alone_is_measured_again() -> None:
    """The paired gate confirms a slowdown in fresh processes; accuracy and work counts need no
    second look (they do not depend on the machine), and a pass is never re-measured."""
    base, slowed = paired_tables(slowdown=1.25)
    assert compare_tables(base, slowed).regressed_by_the_clock_alone
    more_work = set_value(slowed, 0, "work_factorizations", int(slowed.loc[0, "work_factorizations"]) + 1)
    assert not compare_tables(base, more_work).regressed_by_the_clock_alone
    assert not compare_tables(*paired_tables()).regressed_by_the_clock_alone


def interleaved_table(shift: float = 1.0, seed: int = 0, odd_case_shift: float = 1.0) -> pd.DataFrame:
    """One session of one build: the in-house solver timed in turn with qpth (the reference)."""
    rng = random.Random(seed)
    rows = []
    for case in range(4):
        inhouse, reference = [], []
        for _ in range(24):
            machine = rng.choice((1.0, 2.0))  # load doubles both of a pair alike
            reference.append(1e-2 * machine * math.exp(rng.gauss(0.0, 0.1)))
            factor = shift * (odd_case_shift if case == 0 else 1.0)
            inhouse.append(2e-2 * factor * machine * math.exp(rng.gauss(0.0, 0.1)))
        for solver, series in (("inhouse", inhouse), ("qpth", reference)):
            rows.append(make_row(case, solver=solver, pairing=f"session{seed}", solve_times=series,
                                 solve_time_median=statistics.median(series), solves_per_time=1))
    return pd.DataFrame(rows, columns=list(COLUMNS))


def test_interleaved_tables_compare_in_run_ratios_across_time() -> None:
    base = interleaved_table(seed=0)
    runs = [interleaved_table(seed=1), interleaved_table(seed=2)]
    same = compare_tables(base, runs)
    assert same.mode == "unpaired" and same.verdict is Verdict.PASS, same.render()
    assert {c.speed.basis for c in same.cases if c.speed} == {"vs qpth interleaved, 2 sessions"}
    slowed = compare_tables(base, [interleaved_table(1.6, seed=1), interleaved_table(1.6, seed=2)])
    assert slowed.verdict is Verdict.REGRESSION and slowed.aggregate is not None
    assert slowed.aggregate.change == pytest.approx(1.6, rel=0.1)


def test_a_session_with_a_shift_of_its_own_is_not_a_regression_but_a_reason_to_measure_again() -> None:
    base = interleaved_table(seed=0)
    odd, normal = interleaved_table(seed=1, odd_case_shift=1.6), interleaved_table(seed=2)
    assert compare_tables(base, [odd]).verdict is Verdict.REGRESSION  # one session alone cannot tell
    two = compare_tables(base, [odd, normal])  # the spread between the sessions widens the interval
    assert two.verdict is Verdict.INCONCLUSIVE, two.render()
    four = compare_tables(base, [odd, normal, interleaved_table(seed=3), interleaved_table(seed=4)])
    assert four.verdict is Verdict.PASS, four.render()


def test_too_few_pairs_leave_cases_untimed() -> None:
    result = compare_tables(*paired_tables(pairs=4))
    assert all(c.speed is None and "fewer than" in c.speed_note for c in result.cases)
    assert result.verdict is Verdict.INCONCLUSIVE


def test_tables_of_different_sessions_are_not_paired() -> None:
    base, cur = paired_tables()
    cur["pairing"] = "another"
    assert compare_tables(base, cur).mode == "unpaired"


# ----------------------------------------------------------------------------- bad input


def test_cases_in_one_table_only_are_notes_and_the_last_duplicate_counts() -> None:
    base = make_table()
    current = base[base["seed"] != 4]  # the suite dropped a case
    worse_then_fixed = set_value(base, 2, "success_rate", 0.5)
    current = pd.concat([worse_then_fixed[worse_then_fixed["seed"] == 2], current], ignore_index=True)
    result = compare_tables(base, current)  # seed 2 appears twice; its last (healthy) row counts
    assert result.ok, result.render()
    assert len(result.cases) == 11
    assert any(case_id(4) in note and "baseline only" in note for note in result.notes)
    assert any("1 duplicate row" in note for note in result.notes)


def test_accuracy_only_mode_ignores_times() -> None:
    base = make_table()
    result = compare_tables(base, doubled(base, 3), CompareOptions(speed=False))
    assert result.ok and result.aggregate is None
    assert "not judged" in result.render()


def test_no_common_cases_raises() -> None:
    base = make_table()
    other = base.copy()
    other["solver"] = "osqp"
    with pytest.raises(ValueError, match="no common cases"):
        compare_tables(base, other)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"z": 0.0}, "z"),
        ({"work_tolerance": -0.1}, "work_tolerance"),
        ({"success_drop": 2.0}, "success_drop"),
        ({"solvers": ()}, "solvers"),
        ({"residual_growth": 0.5}, "residual_growth"),
        ({"min_pairs": 1}, "min_pairs"),
        ({"promise_suite": 1.0}, "promise_suite"),
    ],
)
def test_bad_options_raise_naming_the_argument(kwargs: dict[str, Any], name: str) -> None:
    with pytest.raises(ValueError, match=name):
        CompareOptions(**kwargs)


# ----------------------------------------------------------------------------- command line


def write_dir(path: Path, table: pd.DataFrame) -> Path:
    for row in table.to_dict("records"):
        write_row(path, {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()})
    return path


def doubled(table: pd.DataFrame, case: int) -> pd.DataFrame:
    out = table.copy()
    for column in ("solve_time_median", "solve_time_min", "solve_time_max"):
        out = set_value(out, case, column, 2 * table.loc[case, column])
    return out


def _scaled(table: pd.DataFrame, factor: float, solver: str | None = None) -> pd.DataFrame:
    out = table.copy()
    rows = out["solver"] == solver if solver else slice(None)
    for column in ("solve_time_median", "solve_time_min", "solve_time_max"):
        out.loc[rows, column] = factor * out.loc[rows, column]
    return out


def test_cli_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = make_table(cases=4)
    base_dir = write_dir(tmp_path / "base", base)
    same_dir = write_dir(tmp_path / "same", base)
    worse_dir = write_dir(tmp_path / "worse", set_value(base, 1, "success_rate", 0.5))
    untimed = base.copy()
    untimed["calibration_time"] = None
    untimed_dir = write_dir(tmp_path / "untimed", untimed)

    assert cli_main(["compare", str(base_dir), str(same_dir)]) == 0
    assert "VERDICT: PASS" in capsys.readouterr().out
    assert cli_main(["compare", str(base_dir), str(worse_dir)]) == 1
    assert "success_rate" in capsys.readouterr().out
    assert cli_main(["compare", str(base_dir), str(untimed_dir)]) == 3
    assert "VERDICT: INCONCLUSIVE" in capsys.readouterr().out
    assert cli_main(["compare", str(base_dir), str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert cli_main(["compare", str(base_dir), str(same_dir), "--solver", "osqp"]) == 2
    assert cli_main(["compare", str(base_dir), str(same_dir), "--promise", "0.9"]) == 2
    assert "promise" in capsys.readouterr().err
    assert cli_main(["compare", str(base_dir), str(same_dir), "--paired"]) == 2
    assert cli_main(["compare", str(base_dir), "--paired", "--confirm", "-1"]) == 2
    assert "--confirm must be >= 0, got -1" in capsys.readouterr().err
    assert cli_main(["compare"]) == 2
    assert "BASELINE" in capsys.readouterr().err


def test_cli_json_and_promise_options(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = make_table(cases=4)
    base_dir, cur_dir = write_dir(tmp_path / "b", base), write_dir(tmp_path / "c", _scaled(base, 1.1))
    assert cli_main(["compare", str(base_dir), str(cur_dir), "--json", str(tmp_path / "v.json")]) == 0
    verdict = json.loads((tmp_path / "v.json").read_text())
    assert verdict["verdict"] == "pass" and verdict["promise"] == {"suite": 1.5, "case": 2.0}
    assert verdict["aggregate"]["change"] == pytest.approx(1.1)
    assert cli_main(["compare", str(base_dir), str(cur_dir), "--promise", "1.2"]) == 1
    assert "promise 1.2x suite, 2x single case" in capsys.readouterr().out  # the case keeps the mode's


def test_environment_differences_are_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    record = {"cpu_model": "A", "torch_threads": 4, "libraries": {"torch": "2.13.0"}, "git": {"commit": "abc"}}
    other = {**record, "torch_threads": 8, "libraries": {"torch": "2.14.0"}, "git": {"commit": "def", "dirty": True}}
    notes = environment_notes(record, other)
    assert "environment differs: torch_threads 4 -> 8" in notes
    assert "environment differs: torch 2.13.0 -> 2.14.0" in notes
    assert "commits: baseline abc, current def (modified tree)" in notes
    assert environment_notes(record, dict(record)) == ["commits: baseline abc, current abc"]
    base = make_table(cases=3)
    base_dir, cur_dir = write_dir(tmp_path / "b", base), write_dir(tmp_path / "c", base)
    write_environment(base_dir, record)
    write_environment(cur_dir, other)
    assert cli_main(["compare", str(base_dir), str(cur_dir)]) == 0
    assert "torch_threads 4 -> 8" in capsys.readouterr().out


def test_cli_remeasures_only_an_inconclusive_verdict(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng = random.Random(3)
    base = make_table(cases=4)
    base_dir = write_dir(tmp_path / "base", base)
    noisy_dir = write_dir(tmp_path / "noisy", jittered(base, rng, amount=0.8))
    quiet_dir = write_dir(tmp_path / "quiet", base)
    assert cli_main(["compare", str(base_dir), str(noisy_dir)]) == 3
    capsys.readouterr()
    # The "re-measurement" copies a quiet run into {out}; judged together with the noisy one.
    copy_quiet = f"cp {quiet_dir / 'results.jsonl'} {{out}}/results.jsonl"
    assert cli_main(["compare", str(base_dir), str(noisy_dir), "--remeasure-cmd", copy_quiet]) in (0, 3)
    out = capsys.readouterr().out
    assert "re-measured once, judged on both runs" in out
    by_variable = f'cp {quiet_dir / "results.jsonl"} "$QPBENCH_REMEASURE_OUT/results.jsonl"'
    assert cli_main(["compare", str(base_dir), str(noisy_dir), "--remeasure-cmd", by_variable]) in (0, 3)
    assert cli_main(["compare", str(base_dir), str(noisy_dir), "--remeasure-cmd", "false {out}"]) == 3
    assert "re-measurement failed" in capsys.readouterr().out
    assert cli_main(["compare", str(base_dir), str(noisy_dir), "--remeasure-cmd", "true"]) == 2
    # A pass or a regression is never re-measured.
    assert cli_main(["compare", str(base_dir), str(quiet_dir), "--remeasure-cmd", "false {out}"]) == 0
    assert "re-measur" not in capsys.readouterr().out
