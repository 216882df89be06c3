"""What runs on a Dask worker: one case per task, measured as the local runner measures it.

A task (:func:`measure_case_on_worker`) first checks that its worker may measure this run (same
qpbench code, libraries, Python and solver versions as the client; one measurement at a time;
able to start worker processes), then runs the case with :func:`qpbench.runner.jobs.run_case`:
problems, reference optimum and calibration time in the Dask worker, each measurement in a worker
process of the Dask worker's own (:class:`qpbench.runner.worker.SubprocessWorker`, kept between
tasks). So a solver that crashes or hangs costs its own row, as it does locally, and the Dask
worker goes on with the next one. Each row is sent to the client as it finishes (a Dask event on
the run's topic) with the fingerprint of this worker's machine; before each measurement the
worker also sends the row it would get if this worker were lost, which the client writes when
that happens (``docs/dask.md``). This module imports ``distributed``; only Dask workers and the
Dask executor import it.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import socket
import sys
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from distributed import WorkerPlugin, get_client, get_worker

from qpbench.results import json_default
from qpbench.runner.jobs import CaseJob, run_case
from qpbench.runner.worker import SubprocessWorker
from qpbench.timing import pinned_threads

RESOURCE = "qpbench"  # a worker started with --resources qpbench=1 runs one measurement at a time
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


@dataclass(frozen=True)
class WorkerIdentity:
    """A Dask worker as the run sees it: where it is, what it measures on, and what it runs."""

    address: str
    host: str
    pid: int
    nthreads: int
    resources: dict[str, float]
    daemon: bool  # a daemonic process may not start the worker processes measurements run in
    machine: str  # qpbench.runner.environment.machine_fingerprint() on the worker
    python: str
    qpbench_commit: str
    libraries: dict[str, str | None]
    solvers: dict[str, str]  # spec -> the adapter's version() there
    thread_variables: dict[str, str | None] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """For the run record: everything but what must equal the run's own versions."""
        return {
            "address": self.address,
            "host": self.host,
            "pid": self.pid,
            "machine": self.machine,
            "nthreads": self.nthreads,
            "resources": self.resources,
            "thread_variables": self.thread_variables,
        }


class WorkerRefusedError(ValueError):
    """A worker that must not measure this run (other code or versions, or unsafe for timing)."""


_HOST_FACTS: dict[str, Any] = {}  # per worker process: facts that cannot change while it lives
_SOLVER_VERSIONS: dict[str, str] = {}


def identify_worker(specs: Sequence[str], dask_worker: Any = None) -> WorkerIdentity:
    """This worker's identity; ``specs`` are the run's solvers (their versions here are part of it).

    Called on the worker, by ``Client.run`` (which passes ``dask_worker``) or by a task."""
    from qpbench.runner.environment import library_versions, machine_fingerprint, qpbench_commit
    from qpbench.runner.solvers import resolve_adapter

    worker = dask_worker if dask_worker is not None else get_worker()
    if not _HOST_FACTS:
        _HOST_FACTS.update(
            machine=machine_fingerprint(),
            python=sys.version.split()[0],  # as the run record writes it
            qpbench_commit=qpbench_commit(),
            libraries=library_versions(),
        )
    for spec in specs:
        if spec not in _SOLVER_VERSIONS:
            try:
                _SOLVER_VERSIONS[spec] = resolve_adapter(spec).version()
            except Exception as exc:
                _SOLVER_VERSIONS[spec] = f"cannot be resolved here ({type(exc).__name__}: {exc})"
    return WorkerIdentity(
        address=str(worker.address),
        host=socket.gethostname(),
        pid=os.getpid(),
        nthreads=int(worker.state.nthreads),
        resources=dict(worker.state.total_resources),
        daemon=bool(multiprocessing.current_process().daemon),
        solvers={spec: _SOLVER_VERSIONS[spec] for spec in specs},
        thread_variables={name: os.environ.get(name) for name in THREAD_VARIABLES},
        **_HOST_FACTS,
    )


def refusals(identity: WorkerIdentity, versions: Mapping[str, Any], use_resource: bool) -> list[str]:
    """Why ``identity`` must not measure this run (empty: it may). ``versions`` are the client's:
    qpbench_commit, python, libraries and solvers (spec -> version)."""
    where = f"worker {identity.address} on {identity.host}"
    found = []
    if identity.qpbench_commit != versions["qpbench_commit"]:
        found.append(f"{where}: qpbench commit {identity.qpbench_commit!r}, this run {versions['qpbench_commit']!r}")
    if identity.python != versions["python"]:
        found.append(f"{where}: Python {identity.python}, this run {versions['python']}")
    for name, wanted in versions["libraries"].items():
        if identity.libraries.get(name) != wanted:
            found.append(f"{where}: {name} {identity.libraries.get(name)}, this run {wanted}")
    for spec, wanted in versions["solvers"].items():
        if identity.solvers.get(spec) != wanted:
            found.append(f"{where}: solver {spec} {identity.solvers.get(spec)}, this run {wanted}")
    if identity.daemon:
        found.append(
            f"{where}: runs as a daemonic process, which may not start the worker processes measurements run in "
            "(start its nanny with DASK_DISTRIBUTED__WORKER__DAEMON=False)"
        )
    if identity.nthreads > 1 and not use_resource:
        found.append(
            f"{where}: has {identity.nthreads} threads, so it would time several measurements at once "
            f"(start workers with --nthreads 1, or give them --resources {RESOURCE}=1)"
        )
    return found


# ----------------------------------------------------------------------------- the task
_MEASURERS: dict[tuple[int, float], SubprocessWorker] = {}


def _measurer(threads: int, grace: float) -> SubprocessWorker:
    """This Dask worker's measurement process, kept between tasks (started once, replaced only
    after a crash or a timeout, as the local runner's is)."""
    key = (threads, grace)
    if key not in _MEASURERS:
        close_measurers()
        _MEASURERS[key] = SubprocessWorker(threads, grace)
    return _MEASURERS[key]


def close_measurers() -> None:
    while _MEASURERS:
        _MEASURERS.popitem()[1].close()


TASK_PREFIX = "qpbench-case-"  # the keys of case tasks (qpbench.runner.dask_executor)


class MeasurerCleanup(WorkerPlugin):
    """Keeps a worker's measurement process from outliving what it is for: stops the measurement
    in progress when the client cancels its case (a Ctrl-C there), and the process when the worker
    closes. Registered once per worker (idempotent), so a new run keeps the running process."""

    idempotent = True

    def transition(self, key: Any, start: str, finish: str, *args: Any, **kwargs: Any) -> None:
        if finish == "cancelled" and str(key).startswith(TASK_PREFIX):
            for measurer in list(_MEASURERS.values()):
                measurer.stop_measurement()

    def teardown(self, worker: Any) -> None:
        close_measurers()


class IgnoreInterrupts(WorkerPlugin):
    """For the workers of the LocalCluster qpbench starts: Ctrl-C reaches every process of the run,
    and the client stops the workers itself (as the local runner does with its worker process)."""

    idempotent = True

    def setup(self, worker: Any) -> None:
        if threading.current_thread() is threading.main_thread():  # where a worker's event loop runs
            signal.signal(signal.SIGINT, signal.SIG_IGN)


class CaseCancelledError(Exception):
    """The client cancelled this case (it was interrupted); stop before the next measurement."""


@dataclass
class CaseResult:
    """What a case task returns: its rows (JSON, as streamed), warnings, why the case could not be
    run (None: it ran), and the worker that measured it."""

    identity: WorkerIdentity
    rows: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    failure: str | None = None


class _EventSink:
    """A case's rows and 'started' notices, sent to the client as events on the run's topic.

    A row goes out on the worker's batched stream (cheap; the task's result carries it again). A
    'started' notice is sent and acknowledged by the scheduler before the measurement begins: if
    the measurement then kills this worker, the client must already know which row it was, and a
    notice still in the worker's send buffer would die with it."""

    def __init__(self, worker: Any, topic: str, job: CaseJob, result: CaseResult) -> None:
        self.worker = worker
        self.topic = topic
        self.job = job
        self.result = result

    def row(self, row: dict[str, Any]) -> None:
        text = json.dumps(row, default=json_default)
        self.result.rows.append(text)
        self.worker.log_event(self.topic, self._message("row", row, text))

    def started(self, row: dict[str, Any]) -> None:
        if _cancelled(self.worker):
            raise CaseCancelledError(self.job.case.case_id)
        get_client().log_event(self.topic, self._message("started", row, json.dumps(row, default=json_default)))

    def warn(self, message: str) -> None:
        self.result.warnings.append(message)

    def case_failed(self, job: CaseJob, message: str) -> None:
        self.result.failure = message

    def _message(self, kind: str, row: Mapping[str, Any], text: str) -> dict[str, Any]:
        key = [row["case_id"], row["solver"], row["tolerance"]]
        return {"job": self.job.index, "kind": kind, "key": key, "row": text, "worker": self.worker.address}


def _cancelled(worker: Any) -> bool:
    try:
        task = worker.state.tasks.get(worker.get_current_task())
    except Exception:  # outside a task, or internals that moved: never stop a case for that
        return False
    return task is not None and task.state == "cancelled"


def measure_case_on_worker(
    job: CaseJob, topic: str, versions: Mapping[str, Any], threads: int, grace: float, use_resource: bool
) -> CaseResult:
    """The task: refuse a worker that must not measure this run, else measure the case here."""
    worker = get_worker()
    identity = identify_worker(list(versions["solvers"]), worker)
    problems = refusals(identity, versions, use_resource)
    if problems:
        raise WorkerRefusedError("; ".join(problems))
    placed = replace(job, base={**job.base, "machine": identity.machine})
    result = CaseResult(identity)
    with pinned_threads(threads or None):
        run_case(placed, _measurer(threads, grace), _EventSink(worker, topic, placed, result))
    return result
