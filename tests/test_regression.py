"""The regression check on synthetic results tables built here (no solver runs)."""

from __future__ import annotations

import math
import random
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from qpbench.cli import main as cli_main
from qpbench.regression import CompareOptions, compare_tables, environment_notes
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


# ----------------------------------------------------------------------------- verdicts


def test_table_compared_with_itself_passes() -> None:
    table = make_table(with_reference_solver=True)
    result = compare_tables(table, table.copy())
    assert result.ok, result.render()
    assert result.regressions == []
    assert len(result.cases) == 12  # only the judged solver's rows are cases
    assert result.aggregate is not None and result.aggregate.change == pytest.approx(1.0)
    assert "VERDICT: no regression" in result.render()


def test_doubled_time_ratio_fails_naming_case_and_metric() -> None:
    base = make_table()
    slow = set_value(base, 3, "solve_time_median", 2 * base.loc[3, "solve_time_median"])
    for column in ("solve_time_min", "solve_time_max"):
        slow = set_value(slow, 3, column, 2 * base.loc[3, column])
    result = compare_tables(base, slow)
    assert not result.ok
    assert [(r.metric, case_id(3) in r.case) for r in result.regressions] == [("time_ratio", True)]
    reg = result.regressions[0]
    assert reg.current / reg.baseline == pytest.approx(2.0)
    assert case_id(3) in reg.message or case_id(3) in reg.case
    assert "time_ratio" in result.render() and "REGRESSION" in result.render()


def test_machine_twice_as_slow_overall_is_not_a_regression() -> None:
    base = make_table()
    slow = base.copy()
    for column in ("solve_time_median", "solve_time_min", "solve_time_max", "calibration_time"):
        slow[column] = 2 * slow[column]
    result = compare_tables(base, slow)
    assert result.ok, result.render()
    # judged on speed (every case timed), not passed for want of a reference
    assert result.aggregate is not None and result.aggregate.cases == len(result.cases)
    assert result.aggregate.change == pytest.approx(1.0)


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


def test_outcome_ok_to_crashed_fails() -> None:
    base = make_table()
    worse = set_value(base, 0, "outcome", "crashed")
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


# ----------------------------------------------------------------------------- noise


@pytest.mark.parametrize("seed", range(10))
def test_ten_percent_jitter_does_not_fail(seed: int) -> None:
    rng = random.Random(seed)
    table = make_table()
    result = compare_tables(jittered(table, rng), jittered(table, rng))
    assert result.ok, result.render()
    assert result.aggregate is not None and result.aggregate.cases == len(result.cases)  # speed was judged


@pytest.mark.parametrize("seed", range(5))
def test_uniform_one_and_a_half_slowdown_is_caught_under_jitter(seed: int) -> None:
    rng = random.Random(100 + seed)
    table = make_table()
    result = compare_tables(jittered(table, rng), jittered(table, rng, slowdown=1.5))
    assert "time_ratio_geomean" in [r.metric for r in result.regressions], result.render()
    assert result.aggregate is not None and result.aggregate.change == pytest.approx(1.5, rel=0.1)


def test_reference_solver_in_the_same_run_can_replace_calibration() -> None:
    table = make_table(with_reference_solver=True)
    table["calibration_time"] = None  # no calibration kernel recorded
    options = CompareOptions(references=("qpth",))
    assert compare_tables(table, table.copy(), options).ok
    slow = table.copy()
    inhouse = slow["solver"] == "inhouse"
    for column in ("solve_time_median", "solve_time_min", "solve_time_max"):
        slow.loc[inhouse, column] *= 1.5
    result = compare_tables(table, slow, options)
    assert "time_ratio_geomean" in [r.metric for r in result.regressions]


def test_calibration_straying_from_the_machine_factor_moves_nothing() -> None:
    base = make_table()
    # One case's calibration kernel ran 100x faster in the current run (it had been stalled by
    # load in the baseline's moment), while every other case's stayed put. The reference's change
    # is one machine factor (the median over the cases), so that case's ratio does not move and
    # its margin is not widened by it.
    current = set_value(base, 3, "calibration_time", base.loc[3, "calibration_time"] / 100)
    result = compare_tables(base, current, CompareOptions(references=("calibration",)))
    assert result.ok, result.render()
    stray = next(c for c in result.cases if case_id(3) in c.case)
    assert stray.speed is not None and stray.speed.change == pytest.approx(1.0)
    others = [c.speed.margin for c in result.cases if c.speed is not None and case_id(3) not in c.case]
    assert stray.speed.margin == pytest.approx(max(others))
    # ... and a real 2x slowdown of that case is still caught.
    slowed = set_value(current, 3, "solve_time_median", base.loc[3, "solve_time_median"] * 2)
    for column in ("solve_time_min", "solve_time_max"):
        slowed = set_value(slowed, 3, column, base.loc[3, column] * 2)
    caught = compare_tables(base, slowed, CompareOptions(references=("calibration",)))
    assert not caught.ok and any(case_id(3) in r[0] for r in caught.regressions), caught.render()


def test_auto_references_use_calibration_and_the_other_solvers() -> None:
    table = make_table(with_reference_solver=True)
    result = compare_tables(table, table.copy())
    assert {c.speed_note for c in result.cases} == {"vs calibration+qpth"}
    only_calibration = compare_tables(table, table.copy(), CompareOptions(references=("calibration",)))
    assert {c.speed_note for c in only_calibration.cases} == {"vs calibration"}


def test_case_without_any_reference_is_not_timed() -> None:
    table = make_table()
    table["calibration_time"] = None
    result = compare_tables(table, table.copy())
    assert result.ok and result.aggregate is None
    assert all(c.speed is None for c in result.cases)


# ----------------------------------------------------------------------------- confirmation


def doubled(table: pd.DataFrame, case: int) -> pd.DataFrame:
    out = table.copy()
    for column in ("solve_time_median", "solve_time_min", "solve_time_max"):
        out = set_value(out, case, column, 2 * table.loc[case, column])
    return out


def test_transient_slowdown_not_reproduced_by_confirmation_passes() -> None:
    base = make_table()
    calls = []

    def rerun() -> pd.DataFrame:
        calls.append(1)
        return base.copy()

    result = compare_tables(base, doubled(base, 3), CompareOptions(confirm=rerun))
    assert calls == [1]
    assert result.ok, result.render()
    assert any("not reproduced" in note for note in result.notes)
    assert "time_ratio not reproduced on re-run" in result.render()
    assert "REGRESSED" not in result.render()


def test_persistent_slowdown_fails_after_confirmation() -> None:
    base = make_table()
    result = compare_tables(base, doubled(base, 3), CompareOptions(confirm=lambda: doubled(base, 3)))
    assert [r.metric for r in result.regressions] == ["time_ratio"]


def test_uniform_slowdown_confirmed_or_not_by_the_rerun() -> None:
    base = make_table()
    slow = base.copy()
    for column in ("solve_time_median", "solve_time_min", "solve_time_max"):
        slow[column] = 1.2 * slow[column]  # inside the 25 % per-case floor: only the aggregate sees it
    first = compare_tables(base, slow)
    assert [r.metric for r in first.regressions] == ["time_ratio_geomean"]
    assert compare_tables(base, slow, CompareOptions(confirm=lambda: base.copy())).ok
    persisting = compare_tables(base, slow, CompareOptions(confirm=lambda: slow.copy()))
    assert [r.metric for r in persisting.regressions] == ["time_ratio_geomean"]


def test_timeout_is_rechecked_by_the_confirmation_but_a_crash_is_not() -> None:
    base = make_table()
    timed_out = set_value(base, 5, "outcome", "timeout")
    assert [r.metric for r in compare_tables(base, timed_out).regressions] == ["outcome"]
    assert compare_tables(base, timed_out, CompareOptions(confirm=lambda: base.copy())).ok
    crashed = set_value(base, 5, "outcome", "crashed")
    result = compare_tables(base, crashed, CompareOptions(confirm=lambda: base.copy()))
    assert [r.metric for r in result.regressions] == ["outcome"]


def test_failed_confirmation_keeps_the_speed_regression() -> None:
    base = make_table()

    def broken() -> pd.DataFrame:
        raise RuntimeError("runner crashed")

    result = compare_tables(base, doubled(base, 3), CompareOptions(confirm=broken))
    assert [r.metric for r in result.regressions] == ["time_ratio"]
    assert any("runner crashed" in note for note in result.notes)
    empty_rerun = compare_tables(base, doubled(base, 3), CompareOptions(confirm=lambda: base.iloc[:0]))
    assert [r.metric for r in empty_rerun.regressions] == ["time_ratio"]
    assert any("no common cases" in note for note in empty_rerun.notes)


def test_confirmation_is_not_run_without_a_speed_regression() -> None:
    base = make_table()

    def rerun() -> pd.DataFrame:
        raise AssertionError("confirmation must not run")

    result = compare_tables(base, set_value(base, 2, "success_rate", 0.5), CompareOptions(confirm=rerun))
    assert [r.metric for r in result.regressions] == ["success_rate"]


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
    assert "not judged (accuracy only)" in result.render()


def test_no_common_cases_raises() -> None:
    base = make_table()
    other = base.copy()
    other["solver"] = "osqp"
    with pytest.raises(ValueError, match="no common cases"):
        compare_tables(base, other)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"speed_threshold": "fast"}, "speed_threshold"),
        ({"speed_threshold": -1.0}, "speed_threshold"),
        ({"success_drop": 2.0}, "success_drop"),
        ({"solvers": ()}, "solvers"),
        ({"residual_growth": 0.5}, "residual_growth"),
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


def test_cli_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = make_table(cases=4)
    base_dir = write_dir(tmp_path / "base", base)
    same_dir = write_dir(tmp_path / "same", base)
    worse_dir = write_dir(tmp_path / "worse", set_value(base, 1, "success_rate", 0.5))

    assert cli_main(["compare", str(base_dir), str(same_dir)]) == 0
    assert "VERDICT: no regression" in capsys.readouterr().out
    assert cli_main(["compare", str(base_dir), str(worse_dir)]) == 1
    assert "success_rate" in capsys.readouterr().out
    assert cli_main(["compare", str(base_dir), str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert cli_main(["compare", str(base_dir), str(same_dir), "--solver", "osqp"]) == 2
    assert cli_main(["compare", str(base_dir), str(same_dir), "--speed-threshold", "x"]) == 2
    assert "--speed-threshold" in capsys.readouterr().err


def test_environment_differences_are_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    record = {"cpu_model": "A", "torch_threads": 4, "libraries": {"torch": "2.13.0"}, "git": {"commit": "abc"}}
    other = {**record, "torch_threads": 8, "libraries": {"torch": "2.14.0"}, "git": {"commit": "def"}}
    notes = environment_notes(record, other)
    assert "environment differs: torch_threads 4 -> 8" in notes
    assert "environment differs: torch 2.13.0 -> 2.14.0" in notes
    assert environment_notes(record, dict(record)) == ["commits: baseline abc, current abc"]
    base = make_table(cases=3)
    base_dir, cur_dir = write_dir(tmp_path / "b", base), write_dir(tmp_path / "c", base)
    write_environment(base_dir, record)
    write_environment(cur_dir, other)
    assert cli_main(["compare", str(base_dir), str(cur_dir)]) == 0
    assert "torch_threads 4 -> 8" in capsys.readouterr().out


def test_cli_confirm_command_reruns_into_out(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = make_table(cases=4)
    base_dir = write_dir(tmp_path / "base", base)
    slow_dir = write_dir(tmp_path / "slow", doubled(base, 2))
    # The "re-run" copies the baseline's results into {out}: the slowdown does not persist.
    source = base_dir / "results.jsonl"
    confirm = f"cp {source} {{out}}/results.jsonl"
    assert cli_main(["compare", str(base_dir), str(slow_dir)]) == 1
    assert cli_main(["compare", str(base_dir), str(slow_dir), "--confirm-cmd", confirm]) == 0
    assert "not reproduced" in capsys.readouterr().out
    by_variable = f'cp {source} "$QPBENCH_CONFIRM_OUT/results.jsonl"'
    assert cli_main(["compare", str(base_dir), str(slow_dir), "--confirm-cmd", by_variable]) == 0
    assert cli_main(["compare", str(base_dir), str(slow_dir), "--confirm-cmd", "false {out}"]) == 1
    assert "unconfirmed" in capsys.readouterr().out
    assert cli_main(["compare", str(base_dir), str(slow_dir), "--confirm-cmd", "true"]) == 2


def _scaled(table: pd.DataFrame, factor: float) -> pd.DataFrame:
    out = table.copy()
    for column in ("solve_time_median", "solve_time_min", "solve_time_max"):
        out[column] = factor * out[column]
    return out


def test_slowdown_near_the_limit_is_judged_on_both_runs_together() -> None:
    # First run 1.20x (over the 15 % aggregate floor), re-run 1.13x (under it on its own):
    # pooled, sqrt(1.20 * 1.13) = 1.164x stays over the floor, so the slowdown stands.
    base = make_table()
    first = _scaled(base, 1.20)
    result = compare_tables(base, first, CompareOptions(confirm=lambda: _scaled(base, 1.13)))
    assert [r.metric for r in result.regressions] == ["time_ratio_geomean"]
    assert any("aggregate over both runs" in note for note in result.notes)


def test_one_run_spike_is_still_cleared_when_pooled() -> None:
    # A spike in one run (1.3x) with a normal re-run (1.0x) pools to 1.14x: under the floor.
    base = make_table()
    result = compare_tables(base, _scaled(base, 1.30), CompareOptions(confirm=lambda: base.copy()))
    assert result.ok
