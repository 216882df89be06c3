"""Where a run's cases are measured: here, one after another (the default), or on a Dask cluster.

Two levels, each behind its own small interface. A **measurement executor**
(:class:`qpbench.runner.worker.Executor`: a worker process, or this process) runs one
measurement with fault isolation. A **case executor** (:class:`CaseExecutor`, chosen with
``--executor``) decides where whole cases run: :class:`LocalExecutor` runs them here through a
measurement executor; :class:`qpbench.runner.dask_executor.DaskExecutor` sends each case to a Dask
worker, which measures it through a worker process of its own. A case, not a measurement, is
the unit a cluster schedules: its problems, reference optimum and calibration time are computed
on the machine that times its solvers, and all its solvers run there (``docs/dask.md``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from qpbench.runner.jobs import CaseJob, CaseSink, run_case
from qpbench.runner.worker import Executor, make_worker, worker_kind

LOCAL = "local"
DASK = "dask"
EXECUTOR_FORMS = (
    "local (the default: cases one after another on this machine), dask (a Dask LocalCluster on this "
    "machine) or dask=ADDRESS (an existing scheduler: tcp://host:8786, or a scheduler file ending in .json)"
)


class CaseExecutor(Protocol):
    """Runs a run's cases and hands every row to the sink as it finishes."""

    kind: str  # recorded in each row's 'worker' column and the run record's 'isolation'

    def start(self) -> None:
        """Get ready (connect, check the workers); raises ValueError when it cannot run this run."""
        ...

    def run(self, jobs: Sequence[CaseJob], sink: CaseSink) -> None: ...

    def record(self) -> dict[str, Any]:
        """Entries for the run record (environment.json): where the rows were measured."""
        ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class ExecutorChoice:
    """What ``--executor`` asked for."""

    name: str  # LOCAL or DASK
    address: str | None = None  # dask: the scheduler's address or scheduler file; None starts a LocalCluster


def parse_executor(text: str) -> ExecutorChoice:
    """``local``, ``dask`` or ``dask=ADDRESS``; ValueError naming --executor otherwise."""
    name, sep, address = text.strip().partition("=")
    name = name.strip().lower()
    if name == LOCAL and not sep:
        return ExecutorChoice(LOCAL)
    if name == DASK:
        if sep and not address.strip():
            raise ValueError(f"--executor {text!r}: the address after 'dask=' is empty; expected {EXECUTOR_FORMS}")
        return ExecutorChoice(DASK, address.strip() or None)
    raise ValueError(f"--executor {text!r}: expected {EXECUTOR_FORMS}")


def default_local_workers(threads: int) -> int:
    """Workers of a LocalCluster: one per ``threads`` cores this process may use."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, usable // max(threads, 1))


class LocalExecutor:
    """The cases one after another in this process, each measurement by ``measurer``."""

    def __init__(self, measurer: Executor) -> None:
        self.measurer = measurer
        self.kind = measurer.kind

    def start(self) -> None:
        return None

    def run(self, jobs: Sequence[CaseJob], sink: CaseSink) -> None:
        for job in jobs:
            run_case(job, self.measurer, sink)

    def record(self) -> dict[str, Any]:
        return {}

    def close(self) -> None:
        self.measurer.close()


@dataclass(frozen=True)
class ExecutorSettings:
    """What an executor needs from the run: its choice, threads and grace, and what every machine
    measuring it must run (the run record's versions)."""

    choice: ExecutorChoice
    in_process: bool
    threads: int
    grace: float
    workers: int | None  # LocalCluster size (dask without an address); None: default_local_workers
    versions: Mapping[str, Any]  # qpbench commit, libraries, python, solver versions by spec


def executor_kind(choice: ExecutorChoice, in_process: bool) -> str:
    return DASK if choice.name == DASK else worker_kind(in_process)


def check_settings(choice: ExecutorChoice, in_process: bool, workers: int | None) -> None:
    """Refuse combinations that do not mean anything, before anything runs."""
    if choice.name == DASK and in_process:
        raise ValueError(
            "--in-process cannot be combined with --executor dask: on a Dask worker a measurement runs in a "
            "worker process of its own, so that a crash or a hang costs only its row"
        )
    if workers is not None and (choice.name != DASK or choice.address is not None):
        raise ValueError(
            "--workers sets the size of the LocalCluster that --executor dask starts; it does not apply to "
            f"--executor {choice.name}{'=' + choice.address if choice.address else ''}"
        )
    if workers is not None and workers < 1:
        raise ValueError(f"--workers must be >= 1, got {workers}")


def make_executor(settings: ExecutorSettings, say: Callable[[str], None]) -> CaseExecutor:
    if settings.choice.name == DASK:
        from qpbench.runner.dask_executor import DaskExecutor

        return DaskExecutor(settings, say)
    return LocalExecutor(make_worker(settings.in_process, settings.threads, settings.grace))
