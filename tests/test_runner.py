"""The runner: suite files, case expansion, fault isolation, resume, and the run/suites commands.

Test-only adapters live in this module and are reached by ``module:Class`` specs, which the
runner (and its worker processes) import by name.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from qpbench.adapters.base import Adapter, Capabilities, SolveOutput, Tolerance
from qpbench.cli import main as cli_main
from qpbench.problem import QPBatch
from qpbench.results import load_environment, load_run_records, load_table, read_rows
from qpbench.runner import RunOptions, apply_overrides, build_batch, expand, load_suite, run_suite
from qpbench.runner.suite import suite_names
from qpbench.status import Status

HERE = __name__


# ----------------------------------------------------------------------------- test problems
def unconstrained(batch_size: int, n: int, m: Any, k: Any, seed: int, dtype: torch.dtype, device: str) -> QPBatch:
    """Strongly convex QPs without constraints: the exact answer is z = -Q^-1 p."""
    gen = torch.Generator().manual_seed(seed)
    U = torch.randn(batch_size, n, n, generator=gen, dtype=torch.float64)
    Q = U @ U.transpose(1, 2) + n * torch.eye(n, dtype=torch.float64)
    p = torch.randn(batch_size, n, generator=gen, dtype=torch.float64)
    return QPBatch(Q=Q, p=p, name="unconstrained", meta={"seed": seed}).to(device=device, dtype=dtype)


# ----------------------------------------------------------------------------- test adapters
class _TestAdapter(Adapter):
    package = ""
    capabilities = Capabilities(batched=True, differentiable=False, dtypes=(torch.float32, torch.float64))

    def options(self, tolerance: Tolerance, time_limit: float) -> dict[str, Any]:
        return {}

    def setup(self, batch: QPBatch, tolerance: Tolerance, time_limit: float) -> Any:
        return batch

    def _import(self) -> Any:
        return None


class ExactAdapter(_TestAdapter):
    """Solves unconstrained QPs exactly (a batched Cholesky solve)."""

    name = "exact"

    def solve(self, prepared: QPBatch) -> SolveOutput:
        z = torch.linalg.solve(prepared.expanded("Q"), -prepared.expanded("p"))
        B = prepared.batch_size
        return SolveOutput(z=z, status=np.full(B, int(Status.SOLVED)), iterations=np.ones(B))


class LyingAdapter(_TestAdapter):
    """Says 'solved' and returns zeros: the residual check must not believe it."""

    name = "lying"

    def solve(self, prepared: QPBatch) -> SolveOutput:
        B = prepared.batch_size
        return SolveOutput(z=torch.zeros(B, prepared.n, dtype=torch.float64), status=np.zeros(B, dtype=int))


class RaisingAdapter(_TestAdapter):
    name = "raising"

    def solve(self, prepared: QPBatch) -> SolveOutput:
        raise RuntimeError("solver blew up on purpose")


class HangingAdapter(_TestAdapter):
    name = "hanging"

    def solve(self, prepared: QPBatch) -> SolveOutput:
        time.sleep(3600)
        raise AssertionError("unreachable")


class ExitingAdapter(_TestAdapter):
    """Ends its interpreter without a word, like a C library calling exit()."""

    name = "exiting"

    def solve(self, prepared: QPBatch) -> SolveOutput:
        os._exit(3)


class KilledAdapter(_TestAdapter):
    """Dies from SIGKILL, like a segfault or the out-of-memory killer."""

    name = "killed"

    def solve(self, prepared: QPBatch) -> SolveOutput:
        os.kill(os.getpid(), signal.SIGKILL)
        raise AssertionError("unreachable")


class OutOfMemoryAdapter(_TestAdapter):
    name = "oom"

    def solve(self, prepared: QPBatch) -> SolveOutput:
        raise MemoryError("cannot allocate 1 TB")


class UnavailableAdapter(_TestAdapter):
    name = "unavailable"

    def availability(self) -> tuple[bool, str]:
        return False, "ModuleNotFoundError: no module named 'nosuchsolver'"

    def solve(self, prepared: QPBatch) -> SolveOutput:
        raise AssertionError("an unavailable solver must not be called")


class Float64OnlyAdapter(ExactAdapter):
    name = "float64_only"
    capabilities = Capabilities(batched=True, differentiable=False, dtypes=(torch.float64,))


SOLVE_CALLS = {"count": 0, "interrupt_at": None}


class InterruptingAdapter(ExactAdapter):
    """Counts solves; raises KeyboardInterrupt (a Ctrl-C) at a chosen one."""

    name = "interrupting"

    def solve(self, prepared: QPBatch) -> SolveOutput:
        SOLVE_CALLS["count"] += 1
        if SOLVE_CALLS["count"] == SOLVE_CALLS["interrupt_at"]:
            raise KeyboardInterrupt
        return super().solve(prepared)


CALL_LOG: list[tuple[str, int]] = []


class RecordingAdapter(ExactAdapter):
    """Logs each setup and solve with the batch size it saw."""

    name = "recording"

    def setup(self, batch: QPBatch, tolerance: Tolerance, time_limit: float) -> Any:
        CALL_LOG.append(("setup", batch.batch_size))
        return batch

    def solve(self, prepared: QPBatch) -> SolveOutput:
        CALL_LOG.append(("solve", prepared.batch_size))
        return super().solve(prepared)


def spec(cls: type) -> str:
    return f"{HERE}:{cls.__name__}"


def write_suite(tmp_path: Path, solvers: list[str], **settings: Any) -> Path:
    values = {
        "solvers": solvers,
        "tolerances": ["mid"],
        "batch_sizes": [2],
        "repeats": 2,
        "warmups": 0,
        "time_limit": 5.0,
        "reference": False,
        **settings,
    }
    lines = ['description = "test suite"']
    lines += [f"{key} = {json.dumps(value)}" for key, value in values.items()]
    lines += ["[[cases]]", f'family = "{HERE}:unconstrained"', "n = [3, 4]"]
    path = tmp_path / "t.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def rows_by_solver(out: Path) -> dict[str, list[dict[str, Any]]]:
    grouped: dict[str, list[dict[str, Any]]] = {}
    for row in read_rows(out):
        grouped.setdefault(row["solver"], []).append(row)
    return grouped


# ----------------------------------------------------------------------------- fault isolation
def test_misbehaving_solvers_in_worker_processes_cost_only_their_own_rows(tmp_path: Path) -> None:
    solvers = [spec(c) for c in (ExactAdapter, RaisingAdapter, HangingAdapter, ExitingAdapter, KilledAdapter)]
    suite = load_suite(write_suite(tmp_path, solvers, time_limit=0.5))
    out = tmp_path / "out"
    summary = run_suite(suite, RunOptions(out_dir=out, quiet=True, grace=0.5))
    rows = rows_by_solver(out)
    assert summary.written == 10  # 2 cases x 5 solvers x 1 tolerance
    assert all(len(r) == 2 for r in rows.values())
    for row in rows[ExactAdapter.name]:
        assert row["outcome"] == "ok" and row["success_rate"] == 1.0 and row["worker"] == "subprocess"
    for row in rows[RaisingAdapter.name]:
        assert row["outcome"] == "failed"
        assert "RuntimeError: solver blew up on purpose" in row["error"]
    for row in rows[HangingAdapter.name]:
        assert row["outcome"] == "timeout"
        assert "solve 1" in row["error"] and "time limit 0.5 s" in row["error"]
    for row in rows[ExitingAdapter.name]:
        assert row["outcome"] == "crashed" and "exited with code 3" in row["error"]
    for row in rows[KilledAdapter.name]:
        assert row["outcome"] == "crashed" and "SIGKILL" in row["error"]


def test_in_process_worker_records_failures_and_python_level_hangs(tmp_path: Path) -> None:
    solvers = [spec(c) for c in (RaisingAdapter, HangingAdapter, OutOfMemoryAdapter, ExactAdapter)]
    suite = load_suite(write_suite(tmp_path, solvers, time_limit=0.2))
    out = tmp_path / "out"
    run_suite(suite, RunOptions(out_dir=out, quiet=True, in_process=True, grace=0.1))
    rows = rows_by_solver(out)
    assert {r["outcome"] for r in rows[RaisingAdapter.name]} == {"failed"}
    assert {r["outcome"] for r in rows[HangingAdapter.name]} == {"timeout"}
    assert {r["outcome"] for r in rows[OutOfMemoryAdapter.name]} == {"oom"}
    assert {r["outcome"] for r in rows[ExactAdapter.name]} == {"ok"}
    assert all(r["worker"] == "in-process" for r in read_rows(out))


def test_unavailable_unsupported_and_cuda_cases_are_recorded_not_run(tmp_path: Path) -> None:
    solvers = [spec(UnavailableAdapter), spec(Float64OnlyAdapter)]
    path = write_suite(tmp_path, solvers, dtypes=["float32"], devices=["cpu", "cuda"])
    out = tmp_path / "out"
    run_suite(load_suite(path), RunOptions(out_dir=out, quiet=True, in_process=True))
    rows = read_rows(out)
    for row in rows:
        if row["device"] == "cuda" and not torch.cuda.is_available():
            assert row["outcome"] == "unsupported" and "CUDA" in row["error"]
        elif row["solver"] == UnavailableAdapter.name:
            assert row["outcome"] == "unavailable" and "nosuchsolver" in row["error"]
        else:
            assert row["outcome"] == "unsupported" and "dtype" in row["error"]


# ----------------------------------------------------------------------------- accuracy and timing fields
def test_rows_hold_accuracy_timing_and_calibration(tmp_path: Path) -> None:
    suite = load_suite(write_suite(tmp_path, [spec(ExactAdapter), spec(LyingAdapter)], repeats=3, warmups=1))
    out = tmp_path / "out"
    run_suite(suite, RunOptions(out_dir=out, quiet=True, in_process=True, threads=1))
    table = load_table(out)
    assert len(table) == 4
    exact = table[table["solver"] == ExactAdapter.name]
    assert (exact["success_rate"] == 1.0).all() and (exact["correct_rate"] == 1.0).all()
    assert (exact["dual_res_max"] < 1e-9).all() and (exact["n_solved"] == 2).all()
    assert (exact["repeats"] == 3).all() and (exact["warmups"] == 1).all()
    assert all(len(times) == 3 for times in exact["solve_times"])
    assert (exact["solve_time_min"] <= exact["solve_time_median"]).all()
    assert (exact["solve_time_median"] <= exact["solve_time_max"]).all()
    assert (exact["calibration_time"] > 0).all() and (exact["torch_threads"] == 1).all()
    lying = table[table["solver"] == LyingAdapter.name]
    # It claims 'solved' but the dual residual of z = 0 is |p|: no success, and the claim is wrong.
    assert (lying["n_solved"] == 2).all() and (lying["success_rate"] == 0.0).all()
    assert (lying["correct_rate"] == 0.0).all()
    assert set(table["n"]) == {3, 4} and set(table["m"]) == {0}
    env = load_environment(out)
    assert env["run_id"] == table["run_id"].iloc[0]
    assert env["torch_threads"] == 1 and env["cpu_cores"] >= 1 and "torch" in env["libraries"]
    assert (table["machine"] == env["machine"]).all() and (table["time_limit"] == 5.0).all()


def test_warmups_then_one_timed_setup_then_repeats() -> None:
    from qpbench.runner.measure import run_measurement

    batch = unconstrained(4, 3, None, None, seed=0, dtype=torch.float64, device="cpu")
    CALL_LOG.clear()
    raw = run_measurement(spec(RecordingAdapter), batch, "mid", 5.0, warmups=2, repeats=3, threads=None)
    # warm-up 1 on the first problem only, timed setup, warm-up 2 on the batch, 3 timed solves
    assert CALL_LOG == [("setup", 1), ("solve", 1), ("setup", 4)] + [("solve", 4)] * 4
    assert len(raw["solve_times"]) == 3 and len(raw["setup_times"]) == 1
    CALL_LOG.clear()
    run_measurement(spec(RecordingAdapter), batch, "mid", 5.0, warmups=0, repeats=1, threads=None)
    assert CALL_LOG == [("setup", 4), ("solve", 4)]


def test_reference_objective_error_uses_the_reference_solve(tmp_path: Path, monkeypatch: Any) -> None:
    pytest.importorskip("qpbench.reference")
    suite = load_suite(write_suite(tmp_path, [spec(ExactAdapter)], reference=True))
    out = tmp_path / "out"
    run_suite(suite, RunOptions(out_dir=out, quiet=True, in_process=True))
    table = load_table(out)
    assert (table["reference"] != "none").all()
    assert (table["obj_rel_err_max"] < 1e-6).all()


# ----------------------------------------------------------------------------- resume
def test_interrupted_run_resumes_without_repeating_finished_rows(tmp_path: Path) -> None:
    solvers = [spec(InterruptingAdapter), spec(LyingAdapter)]
    path = write_suite(tmp_path, solvers, tolerances=["low", "mid"], repeats=1)
    suite = load_suite(path)
    out = tmp_path / "out"
    SOLVE_CALLS.update(count=0, interrupt_at=2)  # Ctrl-C during the 2nd row (case 1, tolerance mid)
    with pytest.raises(KeyboardInterrupt):
        run_suite(suite, RunOptions(out_dir=out, quiet=True, in_process=True))
    first = read_rows(out)
    assert [(r["solver"], r["tolerance"]) for r in first] == [(InterruptingAdapter.name, "low")]
    SOLVE_CALLS.update(count=0, interrupt_at=None)
    summary = run_suite(suite, RunOptions(out_dir=out, quiet=True, in_process=True))
    rows = read_rows(out)
    keys = [(r["case_id"], r["solver"], r["tolerance"]) for r in rows]
    assert len(keys) == len(set(keys)) == 8  # 2 cases x 2 solvers x 2 tolerances, each once
    assert summary.skipped == 1 and summary.written == 7
    assert rows[:1] == first  # the finished row was kept, not redone
    assert SOLVE_CALLS["count"] == 3  # only the 3 rows of this adapter still missing were solved
    records = load_run_records(out)
    assert list(records) == [first[0]["run_id"], summary.run_id]  # one record per run, oldest first
    assert records[first[0]["run_id"]]["completed"] is False and records[summary.run_id]["completed"] is True
    assert records[first[0]["run_id"]]["rows_written"] == 1

    summary = run_suite(suite, RunOptions(out_dir=out, quiet=True, in_process=True, fresh=True))
    assert summary.written == 8 and len(read_rows(out)) == 8


# ----------------------------------------------------------------------------- cases and problems
def test_cases_are_generated_once_per_seed_and_identically_for_the_same_seed() -> None:
    pytest.importorskip("qpbench.generators")
    from qpbench.runner.suite import parse_suite

    data = {
        "solvers": ["x"],
        "seeds": [0, 1],
        "batch_sizes": [3],
        "cases": [{"family": "optnet_random", "n": 6, "m": 5, "k": 0}],
    }
    cases = expand(parse_suite(data, name="s"))
    assert [c.seed for c in cases] == [0, 1]
    assert len({c.case_id for c in cases}) == 2
    a, again, other = build_batch(cases[0]), build_batch(cases[0]), build_batch(cases[1])
    assert (a.batch_size, a.n, a.m, a.k) == (3, 6, 5, 0)
    for name in ("Q", "p", "G", "h"):
        assert torch.equal(getattr(a, name), getattr(again, name))
    assert not torch.equal(a.p, other.p)


def test_suite_validation_names_the_key(tmp_path: Path) -> None:
    from qpbench.runner.suite import parse_suite

    good = {"cases": [{"family": "f", "n": 3}]}
    parse_suite(good, name="ok")
    bad_cases = [
        ({**good, "tolerance": ["mid"]}, "unknown key 'tolerance'"),
        ({**good, "tolerances": ["medium"]}, "'tolerances' entry 'medium'"),
        ({**good, "repeats": 0}, "'repeats'"),
        ({**good, "time_limit": -1}, "'time_limit'"),
        ({**good, "devices": ["tpu"]}, "'devices' entry 'tpu'"),
        ({"cases": [{"family": "f"}]}, "cases[0]: needs 'n'"),
        ({"cases": [{"family": "f", "n": 3, "sizes": [[3, 1, 0]]}]}, "either 'sizes'"),
        ({"cases": [{"family": "f", "sizes": [[3, 1]]}]}, "'sizes' entries"),
        ({"cases": [{"n": 3}]}, "exactly one of 'family' or 'test_set'"),
        ({"cases": [{"test_set": "netlib"}]}, "'test_set' must be one of"),
        ({"cases": [{"family": "f", "n": 3, "batch_sizes": [0]}]}, "cases[0]: 'batch_sizes'"),
        ({}, "at least one [[cases]]"),
    ]
    for data, fragment in bad_cases:
        with pytest.raises(ValueError, match=None) as info:
            parse_suite(data, name="bad")
        assert fragment in str(info.value), (fragment, str(info.value))
    broken = tmp_path / "broken.toml"
    broken.write_text("repeats = [\n")
    with pytest.raises(ValueError, match="not valid TOML"):
        load_suite(broken)
    with pytest.raises(ValueError, match="unknown suite 'nosuch'"):
        load_suite("nosuch")


def test_overrides_replace_every_groups_settings(tmp_path: Path) -> None:
    suite = load_suite(write_suite(tmp_path, ["a"]))
    changed = apply_overrides(suite, {"batch_sizes": [1, 64], "tolerances": ["low"], "repeats": None})
    assert {c.batch_size for c in expand(changed)} == {1, 64}
    assert {c.tolerances for c in expand(changed)} == {("low",)}
    with pytest.raises(ValueError, match="'tolerances' entry 'max'"):
        apply_overrides(suite, {"tolerances": ["max"]})


def test_exclude_solvers_drops_matching_names() -> None:
    from qpbench.runner.solvers import select_solvers

    names = ["osqp", "cvxpy_osqp", "cvxpy_scs", "quadprog", "osqp"]
    assert select_solvers(names, ["cvxpy_*"]) == ["osqp", "quadprog"]
    assert select_solvers(names) == ["osqp", "cvxpy_osqp", "cvxpy_scs", "quadprog"]


def test_shipped_suites_parse_and_expand() -> None:
    assert {"default", "optnet_paper", "maros_meszaros", "scaling", "ci"} <= set(suite_names())
    for name in suite_names():
        suite = load_suite(name)
        assert suite.description
        if all(group.test_set is None for group in suite.groups):
            assert expand(suite)
    default = expand(load_suite("default"))
    assert {c.batch_size for c in default} == {1, 16, 128}
    assert {c.device for c in default} == {"cpu", "cuda"}


# ----------------------------------------------------------------------------- the commands
def test_run_command_summarizes_and_exits_with_the_documented_codes(tmp_path: Path, capsys: Any) -> None:
    path = write_suite(tmp_path, [spec(ExactAdapter), spec(RaisingAdapter)])
    out = tmp_path / "out"
    argv = ["run", str(path), "--out", str(out), "--in-process", "--quiet", "--no-report"]
    assert cli_main([*argv, "--batch-sizes", "1,3"]) == 0
    text = capsys.readouterr().out
    assert "8 rows written" in text and "success_rate" in text
    assert ExactAdapter.name in text and spec(ExactAdapter) not in text  # rows carry the adapter's name
    assert len(read_rows(out)) == 8
    assert cli_main([*argv, "--batch-sizes", "1,3"]) == 0  # resumed: nothing left to do
    assert "0 rows written" in capsys.readouterr().out
    assert cli_main([*argv, "--tolerance", "medium"]) == 2
    assert "tolerance" in capsys.readouterr().err
    assert cli_main(["run", "nosuchsuite", "--out", str(out)]) == 2
    assert cli_main([*argv[:-1], "--solvers", f"{HERE}:NoSuchClass"]) == 2

    SOLVE_CALLS.update(count=0, interrupt_at=1)
    assert cli_main([*argv, "--solvers", spec(InterruptingAdapter), "--fresh"]) == 130
    assert "resume" in capsys.readouterr().err
    SOLVE_CALLS.update(count=0, interrupt_at=None)


def test_suites_command_lists_every_suite(capsys: Any) -> None:
    assert cli_main(["suites"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert {line.split()[0] for line in lines} == set(suite_names())


def test_report_step_is_skipped_with_a_reason_when_reports_are_absent(
    tmp_path: Path, capsys: Any, monkeypatch: Any
) -> None:
    import sys

    from qpbench.commands.run import write_report

    monkeypatch.setitem(sys.modules, "qpbench.reports", None)  # makes the import fail
    assert write_report(tmp_path) == 0
    assert "report step skipped" in capsys.readouterr().out


def test_output_paths_that_are_files_are_bad_input_not_a_traceback(tmp_path: Path, capsys: Any) -> None:
    path = write_suite(tmp_path, [spec(ExactAdapter)])
    taken = tmp_path / "taken"
    taken.write_text("not a folder")
    argv = ["run", str(path), "--in-process", "--quiet", "--no-report"]
    assert cli_main([*argv, "--out", str(taken)]) == 2
    assert f"--out {taken} is a file, not a results directory" in capsys.readouterr().err
    assert cli_main([*argv, "--out", str(taken / "sub")]) == 2
    assert "Not a directory" in capsys.readouterr().err
    out = tmp_path / "out"
    assert cli_main([*argv, "--out", str(out)]) == 0
    capsys.readouterr()
    assert cli_main(["report", str(out), "-o", str(taken)]) == 2
    assert "Not a directory" in capsys.readouterr().err
    assert taken.read_text() == "not a folder"
