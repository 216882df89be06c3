"""The Dask executor on a 2-worker LocalCluster: the same rows as a local run, fault isolation on
the workers (a crashing measurement, a lost worker), and resuming across executors.

One cluster serves the module (``--executor dask=ADDRESS``, an existing scheduler); one test
lets qpbench start its own (``--executor dask``). Test adapters (the runner tests' and a few of
their own) are reached by ``module:Class`` specs naming this module, which the workers import.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from qpbench.adapters.base import SolveOutput, Tolerance
from qpbench.problem import QPBatch
from qpbench.results import RESULTS_FILE, load_run_records, read_rows
from qpbench.runner import RunOptions, load_suite, run_suite
from qpbench.runner.environment import machine_fingerprint

if os.environ.get("CI"):  # in CI the Dask tests must run, not skip
    import distributed
else:
    distributed = pytest.importorskip("distributed", reason="the dask extra is not installed: pip install '.[dask]'")

HERE = __name__
SOLVE_LOG = "QPBENCH_TEST_SOLVE_LOG"  # a file each solve of LoggingAdapter appends a line to


# ----------------------------------------------------------------------------- test problems and adapters
# The runner tests' problem and adapters, reached here through this module's names (HERE).
from test_runner import (  # noqa: E402
    ExactAdapter,
    ExitingAdapter,
    HangingAdapter,
    KilledAdapter,
    RaisingAdapter,
    _TestAdapter,
    unconstrained,  # noqa: F401 (the suites' family is HERE:unconstrained)
)


class WorkerKillingAdapter(_TestAdapter):
    """Kills the Dask worker that measures it (its measurement process's grandparent: the worker
    starts a forkserver, which forks the measurement process), once per test."""

    name = "worker_killing"

    def solve(self, prepared: QPBatch) -> SolveOutput:
        import psutil

        marker = Path(os.environ[SOLVE_LOG]).with_suffix(".killed")
        if marker.exists():  # the worker is killed once; a second call would be a bug
            raise AssertionError("the row of a lost worker was measured again")
        marker.write_text("1")
        forkserver = psutil.Process(os.getppid())
        os.kill(forkserver.ppid(), signal.SIGKILL)
        os._exit(1)


class LoggingAdapter(ExactAdapter):
    """Exact, a little slow, and logs each solve (seed, case size, tolerance, process id) to a file,
    so a test sees which process measured what, across processes. Each test uses a seed of its
    own: a measurement a cancelled case left running on a worker may log after its test ended."""

    name = "logging"

    def setup(self, batch: QPBatch, tolerance: Tolerance, time_limit: float) -> Any:
        return batch, tolerance.name.lower()

    def solve(self, prepared: Any) -> SolveOutput:
        batch, tolerance = prepared
        time.sleep(0.15)
        with open(os.environ[SOLVE_LOG], "a", encoding="utf-8") as log:
            log.write(f"{batch.meta['seed']} {batch.n} {tolerance} {os.getpid()}\n")
        return super().solve(batch)


def spec(cls: type) -> str:
    return f"{HERE}:{cls.__name__}"


def write_suite(tmp_path: Path, solvers: list[str], sizes: list[int] | None = None, **settings: Any) -> Path:
    values = {"solvers": solvers, "tolerances": ["mid"], "batch_sizes": [2], "repeats": 2, "warmups": 0,
              "time_limit": 5.0, "reference": False, **settings}  # fmt: skip
    lines = ['description = "dask test suite"', *(f"{key} = {json.dumps(value)}" for key, value in values.items())]
    lines += ["[[cases]]", f'family = "{HERE}:unconstrained"', f"n = {json.dumps(sizes or [3, 4])}"]
    path = tmp_path / "t.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def by_key(rows: list[dict[str, Any]]) -> dict[tuple[str, str, str], dict[str, Any]]:
    return {(r["case_id"], r["solver"], r["tolerance"]): r for r in rows}


# ----------------------------------------------------------------------------- the shared cluster
@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The LocalCluster qpbench starts for ``--executor dask`` (2 workers), started and checked by
    the Dask executor itself; the module's runs reach it as an existing scheduler.

    Its workers inherit this process's environment when they start, so the solve log's path is
    set here, once for the module (the ``solve_log`` fixture clears the file per test)."""
    from qpbench.runner.dask_executor import DaskExecutor
    from qpbench.runner.environment import library_versions, qpbench_commit
    from qpbench.runner.executors import ExecutorChoice, ExecutorSettings

    os.environ[SOLVE_LOG] = str(tmp_path_factory.mktemp("dask") / "solves.log")
    versions = {"qpbench_commit": qpbench_commit(), "python": sys.version.split()[0], "libraries": library_versions(),
                "solvers": {}}  # fmt: skip
    executor = DaskExecutor(ExecutorSettings(ExecutorChoice("dask"), False, 1, 5.0, 2, versions), say=lambda _: None)
    try:
        executor.start()
        yield executor
    finally:
        executor.close()


@pytest.fixture(scope="module")
def scheduler(cluster: Any) -> str:
    return str(cluster.record()["dask"]["scheduler"])


@pytest.fixture
def solve_log(scheduler: str) -> Path:
    """The file LoggingAdapter appends each solve to, empty."""
    path = Path(os.environ[SOLVE_LOG])
    path.unlink(missing_ok=True)
    path.with_suffix(".killed").unlink(missing_ok=True)
    return path


def dask_options(out: Path, address: str, **options: Any) -> RunOptions:
    return RunOptions(out_dir=out, quiet=True, executor=f"dask={address}", **options)


# ----------------------------------------------------------------------------- same rows as a local run
def test_without_an_address_qpbench_starts_a_local_cluster_of_single_threaded_workers(cluster: Any) -> None:
    dask = cluster.record()["dask"]
    assert dask["local_cluster"] is True and dask["one_measurement_at_a_time_by"] == "one thread per worker"
    workers = dask["workers"]
    assert len(workers) == 2 and {w["nthreads"] for w in workers} == {1}
    assert {w["machine"] for w in workers} == {machine_fingerprint()}
    # the LocalCluster does not cap BLAS/OpenMP threads: its workers see this process's environment
    assert all(w["thread_variables"]["OMP_NUM_THREADS"] == os.environ.get("OMP_NUM_THREADS") for w in workers)


def test_a_dask_run_gives_the_rows_of_a_local_run(tmp_path: Path, scheduler: str) -> None:
    pytest.importorskip("osqp")
    solvers = [spec(ExactAdapter), "osqp", "clarabel"]
    suite = load_suite(write_suite(tmp_path, solvers, repeats=1, reference=True))
    local, dask = tmp_path / "local", tmp_path / "dask"
    run_suite(suite, RunOptions(out_dir=local, quiet=True, in_process=True))  # the cheapest local run
    summary = run_suite(suite, dask_options(dask, scheduler))
    assert summary.written == 6 and not summary.case_errors  # 2 cases x 3 solvers
    local_rows, dask_rows = by_key(read_rows(local)), by_key(read_rows(dask))
    assert local_rows.keys() == dask_rows.keys()
    compared = ("outcome", "n_solved", "n_success", "success_rate", "correct_rate", "n_failed_status",
                "expected_status", "multipliers", "n", "m", "k", "torch_threads", "reference")  # fmt: skip
    residuals = ("primal_res_max", "dual_res_max", "gap_max", "obj_rel_err_max")
    for key, row in dask_rows.items():
        mine = local_rows[key]
        assert {c: row[c] for c in compared} == {c: mine[c] for c in compared}, key
        for column in residuals:
            assert mine[column] is not None, (key, column)
            assert row[column] == pytest.approx(mine[column], rel=1e-6, abs=1e-12), (key, column)
        assert row["worker"] == "dask" and mine["worker"] == "in-process"
        assert row["machine"] == machine_fingerprint() and row["calibration_time"] > 0
    (record,) = load_run_records(dask).values()
    assert record["isolation"] == "dask" and record["dask"]["scheduler"] == scheduler
    assert {w["machine"] for w in record["dask"]["workers"]} == {machine_fingerprint()}


# ----------------------------------------------------------------------------- fault isolation on the workers
def test_misbehaving_solvers_on_dask_workers_cost_only_their_own_rows(tmp_path: Path, scheduler: str) -> None:
    solvers = [spec(c) for c in (ExactAdapter, RaisingAdapter, HangingAdapter, ExitingAdapter, KilledAdapter)]
    suite = load_suite(write_suite(tmp_path, solvers, sizes=[3], repeats=1, time_limit=0.5))
    out = tmp_path / "out"
    summary = run_suite(suite, dask_options(out, scheduler, grace=0.5))
    assert summary.written == 5 and not summary.case_errors
    rows = read_rows(out)
    outcomes = {(r["solver"], r["outcome"]) for r in rows}
    assert outcomes == {("exact", "ok"), ("raising", "failed"), ("hanging", "timeout"), ("exiting", "crashed"),
                        ("killed", "crashed")}  # fmt: skip
    errors = {r["solver"]: r["error"] for r in rows}
    assert "RuntimeError: solver blew up on purpose" in errors["raising"]
    assert "solve 1" in errors["hanging"] and "time limit 0.5 s" in errors["hanging"]
    assert "exited with code 3" in errors["exiting"] and "SIGKILL" in errors["killed"]
    assert all(r["success_rate"] == 1.0 for r in rows if r["solver"] == "exact")


def test_a_lost_dask_worker_costs_the_row_it_was_measuring(tmp_path: Path, scheduler: str, solve_log: Path) -> None:
    # one case: exact, then the killer, then logging (measured after the killer, by another worker)
    solvers = [spec(ExactAdapter), spec(WorkerKillingAdapter), spec(LoggingAdapter)]
    suite = load_suite(write_suite(tmp_path, solvers, sizes=[3], repeats=1, seeds=[10]))
    out = tmp_path / "out"
    summary = run_suite(suite, dask_options(out, scheduler))
    rows = by_key(read_rows(out))
    assert len(rows) == 3 and summary.written == 3 and not summary.case_errors
    case = f"{HERE}:unconstrained/n3-mdefault-kdefault/B2/s10/float64/cpu"
    lost = rows[(case, "worker_killing", "mid")]
    assert lost["outcome"] == "crashed" and "Dask worker measuring it" in lost["error"] and "was lost" in lost["error"]
    assert lost["machine"] == machine_fingerprint() and lost["calibration_time"] > 0
    assert rows[(case, "exact", "mid")]["outcome"] == "ok" and rows[(case, "logging", "mid")]["outcome"] == "ok"
    assert _solves(solve_log, 10, mine=False) == [(3, "mid")]  # the rest of the case ran once


# ----------------------------------------------------------------------------- resuming across executors
def _interrupt_after(out: Path, rows: int) -> threading.Thread:
    """Ctrl-C (SIGINT to this process) once ``rows`` rows are in the results file."""

    def watch() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            path = out / RESULTS_FILE
            if path.exists() and len(path.read_text().splitlines()) >= rows:
                os.kill(os.getpid(), signal.SIGINT)
                return
            time.sleep(0.02)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


@contextmanager
def _interrupts_delivered() -> Iterator[None]:
    """SIGINT raises KeyboardInterrupt meanwhile, also where this process was started with it
    ignored (a background job of a non-interactive shell, nohup): Python then keeps it ignored."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _solves(solve_log: Path, seed: int, mine: bool) -> list[tuple[int, str]]:
    """(n, tolerance) of each solve of ``seed`` logged by this process (``mine``) or by others."""
    found = []
    for line in solve_log.read_text().splitlines() if solve_log.exists() else []:
        logged_seed, n, tolerance, pid = line.split()
        if int(logged_seed) == seed and (int(pid) == os.getpid()) == mine:
            found.append((int(n), tolerance))
    return found


def _n_and_tolerance(rows: list[dict[str, Any]]) -> set[tuple[int, str]]:
    return {(int(r["n"]), r["tolerance"]) for r in rows}


@pytest.mark.parametrize("first", ["dask", "local"])
def test_an_interrupted_run_resumes_under_the_other_executor_without_repeating_rows(
    tmp_path: Path, scheduler: str, solve_log: Path, first: str
) -> None:
    seed = {"dask": 11, "local": 12}[first]
    suite = load_suite(
        write_suite(tmp_path, [spec(LoggingAdapter)], sizes=[3, 4, 5, 6], tolerances=["low", "mid"], repeats=1,
                    seeds=[seed])
    )  # fmt: skip
    out = tmp_path / "out"
    on_dask, in_process = dask_options(out, scheduler), RunOptions(out_dir=out, quiet=True, in_process=True)
    with _interrupts_delivered(), pytest.raises(KeyboardInterrupt):
        watcher = _interrupt_after(out, 2)
        run_suite(suite, on_dask if first == "dask" else in_process)
    watcher.join()
    finished = read_rows(out)
    assert 2 <= len(finished) < 8
    solve_log.unlink(missing_ok=True)  # the first run's solves

    summary = run_suite(suite, in_process if first == "dask" else on_dask)
    rows = read_rows(out)
    assert len(by_key(rows)) == len(rows) == 8  # 4 cases x 2 tolerances, each once
    assert rows[: len(finished)] == finished  # the finished rows were kept, not redone
    assert summary.skipped == len(finished) and summary.written == 8 - len(finished)
    resumed = _solves(solve_log, seed, mine=first == "dask")  # the resuming executor's solves
    assert sorted(resumed) == sorted(_n_and_tolerance(rows) - _n_and_tolerance(finished))
    assert {r["worker"] for r in rows[len(finished):]} == {"in-process" if first == "dask" else "dask"}
    assert len(load_run_records(out)) == 2


# ----------------------------------------------------------------------------- refusals
def test_a_worker_running_other_code_or_timing_several_measurements_is_refused() -> None:
    from qpbench.runner.dask_worker import WorkerIdentity, refusals

    versions = {"qpbench_commit": "abc", "python": "3.11.7", "libraries": {"torch": "2.13.0"},
                "solvers": {"osqp": "1.1.3"}}  # fmt: skip
    good = WorkerIdentity(address="tcp://h:1", host="h", pid=1, nthreads=1, resources={}, daemon=False, machine="m",
                          python="3.11.7", qpbench_commit="abc", libraries={"torch": "2.13.0"},
                          solvers={"osqp": "1.1.3"})  # fmt: skip
    assert refusals(good, versions, use_resource=False) == []
    bad = WorkerIdentity(address="tcp://h:2", host="h", pid=2, nthreads=4, resources={}, daemon=True, machine="m",
                         python="3.12.1", qpbench_commit="def", libraries={"torch": "2.12.0"},
                         solvers={"osqp": "1.0.0"})  # fmt: skip
    found = "\n".join(refusals(bad, versions, use_resource=False))
    for expected in ("qpbench commit 'def', this run 'abc'", "Python 3.12.1", "torch 2.12.0, this run 2.13.0",
                     "solver osqp 1.0.0, this run 1.1.3", "DASK_DISTRIBUTED__WORKER__DAEMON=False",
                     "has 4 threads", "--resources qpbench=1"):  # fmt: skip
        assert expected in found
    assert not any("threads" in p for p in refusals(bad, versions, use_resource=True))  # the resource limits it


def test_executor_errors_name_the_option_and_nothing_is_written(
    tmp_path: Path, capsys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from qpbench.cli import main as cli_main
    from qpbench.runner import dask_executor

    monkeypatch.setattr(dask_executor, "CONNECT_TIMEOUT_S", 1.0)  # nothing listens there: no need to wait long

    path = write_suite(tmp_path, [spec(ExactAdapter)])
    out = tmp_path / "out"
    argv = ["run", str(path), "--out", str(out), "--quiet", "--no-report"]
    for extra, message in (
        (["--executor", "ray"], "--executor 'ray': expected local"),
        (["--executor", "dask="], "the address after 'dask=' is empty"),
        (["--executor", "dask", "--in-process"], "--in-process cannot be combined with --executor dask"),
        (["--workers", "2"], "--workers sets the size of the LocalCluster"),
        (["--executor", "dask=tcp://127.0.0.1:1"], "cannot reach the Dask scheduler"),
        (["--executor", "dask=missing.json"], "no scheduler file missing.json"),
    ):
        assert cli_main([*argv, *extra]) == 2, extra
        assert message in capsys.readouterr().err, extra
    assert not (out / RESULTS_FILE).exists()


def test_without_the_dask_extra_the_error_names_the_install_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_suite(tmp_path, [spec(ExactAdapter)])
    out = tmp_path / "out"
    run_suite(load_suite(path), RunOptions(out_dir=out, quiet=True, in_process=True))
    before = (out / RESULTS_FILE).read_bytes()
    monkeypatch.setitem(__import__("sys").modules, "distributed", None)  # import distributed now fails
    with pytest.raises(ValueError, match=r"pip install 'qpbench\[dask\]'"):
        run_suite(load_suite(path), RunOptions(out_dir=out, quiet=True, executor="dask", fresh=True))
    assert (out / RESULTS_FILE).read_bytes() == before  # refused before --fresh deleted anything
