"""``--executor dask[=ADDRESS]``: a run's cases on a Dask distributed cluster.

The client (this process) connects to a scheduler (``ADDRESS``: ``tcp://host:port`` or a
scheduler file ``*.json``) or starts a :class:`distributed.LocalCluster`, checks every worker
(:func:`qpbench.runner.dask_worker.refusals`), submits one task per case and writes each row to
``results.jsonl`` as the worker's event for it arrives; the task's result is checked against the
rows received, so a row is written once even when an event is late or a task ran twice. What
stays honest on a cluster:

* **One measurement per worker at a time.** Each worker runs one task at a time: a worker with
  one thread, or, where workers advertise the resource ``qpbench``, tasks that each claim one
  unit of it. A worker with several threads and no such resource is refused.
* **The same threads as the local runner.** The run's torch thread count is pinned on the worker
  and in its measurement process. The LocalCluster started here does not cap OpenMP/MKL/OpenBLAS
  threads as Dask's nannies do by default, so its workers see this process's environment.
* **The same fault isolation.** A measurement runs in a worker process of the Dask worker
  (:mod:`qpbench.runner.dask_worker`), so a crash or a hang costs its own row and the Dask worker
  goes on. If the Dask worker itself is lost (killed, out of memory, its machine gone), the row
  it was measuring is written ``crashed`` and the rest of its case is sent to another worker.
* **Each row names the machine that measured it** (``machine``), and the run record lists the
  workers, so reports never pool timings across machines.
"""

from __future__ import annotations

import datetime as dt
import json
import queue
import signal
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from qpbench.runner.executors import DASK, ExecutorSettings, default_local_workers
from qpbench.runner.jobs import CaseJob, CaseSink
from qpbench.runner.resume import Key

DASK_MISSING = (
    "--executor dask needs the optional Dask packages (dask and distributed): pip install 'qpbench[dask]'"
)
CONNECT_TIMEOUT_S = 30.0
WAIT_FOR_WORKERS_S = 600.0  # a batch system may take a while to start the first worker
POLL_S = 0.5  # how often the client looks up from its queue (Ctrl-C is seen at least this often)

# The LocalCluster started here, and why each setting:
LOCAL_CLUSTER_CONFIG = {
    # a measurement runs in a child process of the worker; a daemonic worker may not have one
    "distributed.worker.daemon": False,
    # the nanny's default caps OpenMP/MKL/OpenBLAS at one thread; the local runner does not
    "distributed.nanny.pre-spawn-environ": {"MALLOC_TRIM_THRESHOLD_": 65536},
    # a lost worker costs the row it was measuring (written crashed here); the scheduler does not
    # quietly run the whole case again on the next worker
    "distributed.scheduler.allowed-failures": 0,
    # a worker takes its next case only when it is free, so a long case never waits behind another
    "distributed.scheduler.worker-saturation": 1.0,
}


def require_distributed() -> None:
    """ValueError with the install command when the extra is missing."""
    try:
        import dask  # noqa: F401
        import distributed  # noqa: F401
    except ImportError as exc:
        raise ValueError(f"{DASK_MISSING} ({type(exc).__name__}: {exc})") from None


def start_local_cluster(workers: int, stack: ExitStack) -> Any:
    """A LocalCluster of ``workers`` single-threaded worker processes, closed by ``stack``.

    No memory limit: Dask would pause or restart a worker near its share of memory, which the
    local runner never does; a measurement that runs out of memory is recorded ``oom`` or
    ``crashed`` instead. The settings stay in force while the cluster lives (a nanny reads them
    again when it restarts a lost worker). The workers ignore Ctrl-C, as the local runner's
    worker processes do: a terminal sends it to every process of the run, and this process
    stops them itself."""
    import dask
    from distributed import LocalCluster

    from qpbench.runner.dask_worker import IgnoreInterrupts

    stack.enter_context(dask.config.set(LOCAL_CLUSTER_CONFIG))
    with _interrupts_ignored():  # inherited by the worker processes started now
        cluster = LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, memory_limit=0, dashboard_address=None
        )
    stack.callback(cluster.close)
    with cluster.get_client() as client:  # a worker the nanny restarts later ignores it too
        client.register_plugin(IgnoreInterrupts(), name="qpbench-ignore-interrupts")
    return cluster


@contextmanager
def _interrupts_ignored() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


class DaskExecutor:
    """Cases as tasks on a Dask cluster; rows streamed back and handed to the sink."""

    kind = DASK

    def __init__(self, settings: ExecutorSettings, say: Callable[[str], None]) -> None:
        require_distributed()
        self.settings = settings
        self.say = say
        self._stack = ExitStack()
        self._client: Any = None
        self._use_resource = False
        self._identities: dict[str, Any] = {}  # address -> WorkerIdentity
        self._topic = f"qpbench-rows-{uuid.uuid4().hex}"
        self._inbox: queue.Queue[tuple[Any, ...]] = queue.Queue()
        self._jobs: dict[int, CaseJob] = {}
        self._futures: dict[int, Any] = {}  # job index -> its current task
        self._started: dict[int, dict[str, Any]] = {}  # job index -> the last 'started' event
        self._written: set[Key] = set()

    # ------------------------------------------------------------------------- start
    def start(self) -> None:
        from qpbench.runner.dask_worker import MeasurerCleanup

        self._client = self._connect()
        self._check_workers()
        self._client.register_plugin(MeasurerCleanup(), name="qpbench-measurer-cleanup")
        self._client.subscribe_topic(self._topic, lambda event: self._inbox.put(("event", event[1])))

    def _connect(self) -> Any:
        from distributed import Client

        address = self.settings.choice.address
        if address is None:
            workers = self.settings.workers or default_local_workers(self.settings.threads)
            cluster = start_local_cluster(workers, self._stack)
            client = Client(cluster)
        else:
            try:
                if address.endswith(".json"):
                    if not Path(address).is_file():
                        raise ValueError(f"--executor dask={address}: no scheduler file {address}")
                    client = Client(scheduler_file=address, timeout=CONNECT_TIMEOUT_S)
                else:
                    client = Client(address, timeout=CONNECT_TIMEOUT_S)
            except OSError as exc:  # distributed raises OSError (its TimeoutError among them) when unreachable
                raise ValueError(f"--executor dask={address}: cannot reach the Dask scheduler: {exc}") from None
        self._stack.callback(client.close)
        return client

    def _check_workers(self) -> None:
        """Wait for a worker, then refuse the run if any worker must not measure it."""
        from qpbench.runner.dask_worker import RESOURCE, WorkerRefusedError, identify_worker, refusals

        client = self._client
        try:
            client.wait_for_workers(1, timeout=WAIT_FOR_WORKERS_S)
        except TimeoutError:
            raise ValueError(
                f"no Dask worker joined the scheduler at {client.scheduler.address} within {WAIT_FOR_WORKERS_S:g} s"
            ) from None
        info = client.scheduler_info(n_workers=-1)["workers"]
        self._use_resource = any(RESOURCE in (w.get("resources") or {}) for w in info.values())
        identities = client.run(identify_worker, list(self.settings.versions["solvers"]))
        versions = self.settings.versions
        problems = [p for ident in identities.values() for p in refusals(ident, versions, self._use_resource)]
        if problems:
            raise WorkerRefusedError(
                "these Dask workers must not measure this run:\n  " + "\n  ".join(problems)
                + "\nEvery worker must run the same qpbench checkout and versions as this client (see docs/dask.md)."
            )
        self._identities.update(identities)
        machines = sorted({ident.machine for ident in identities.values()})
        self.say(
            f"Dask: {len(identities)} worker(s) at {client.scheduler.address}, {len(machines)} machine(s): "
            + "; ".join(machines)
        )
        if self._use_resource:
            idle = sorted(a for a, w in info.items() if RESOURCE not in (w.get("resources") or {}))
            if idle:
                names = ", ".join(idle)
                self.say(f"note: {len(idle)} worker(s) without the resource {RESOURCE!r} get no case: {names}")

    # ------------------------------------------------------------------------- run
    def run(self, jobs: Sequence[CaseJob], sink: CaseSink) -> None:
        for job in jobs:
            self._jobs[job.index] = job
            self._submit(job)
        while self._futures:
            try:
                item = self._inbox.get(timeout=POLL_S)
            except queue.Empty:
                continue
            if item[0] == "event":
                self._on_event(item[1], sink)
            else:
                self._on_done(item[1], item[2], sink)

    def _submit(self, job: CaseJob) -> None:
        from qpbench.runner.dask_worker import RESOURCE, TASK_PREFIX, measure_case_on_worker

        settings = self.settings
        future = self._client.submit(
            measure_case_on_worker,
            job,
            self._topic,
            dict(settings.versions),
            settings.threads,
            settings.grace,
            self._use_resource,
            key=f"{TASK_PREFIX}{job.index}-{uuid.uuid4().hex[:8]}",
            pure=False,
            resources={RESOURCE: 1} if self._use_resource else None,
        )
        self._futures[job.index] = future
        future.add_done_callback(lambda done, index=job.index: self._inbox.put(("done", index, done)))

    def _on_event(self, message: dict[str, Any], sink: CaseSink) -> None:
        if message.get("kind") == "started":
            self._started[int(message["job"])] = message
            sink.started(json.loads(message["row"]))
        elif message.get("kind") == "row":
            self._write(json.loads(message["row"]), sink)

    def _write(self, row: dict[str, Any], sink: CaseSink) -> None:
        key = (row["case_id"], row["solver"], row["tolerance"])
        if key in self._written:  # already written from its event (or from an earlier run of the task)
            return
        self._written.add(key)
        sink.row(row)

    def _on_done(self, index: int, future: Any, sink: CaseSink) -> None:
        if self._futures.get(index) is not future:
            return
        del self._futures[index]
        job = self._jobs[index]
        if future.status == "finished":
            self._on_result(job, future.result(), sink)
            return
        self._on_failure(job, _task_error(future), sink)

    def _on_result(self, job: CaseJob, result: Any, sink: CaseSink) -> None:
        self._started.pop(job.index, None)
        self._identities[result.identity.address] = result.identity
        for text in result.rows:
            self._write(json.loads(text), sink)
        for message in result.warnings:
            sink.warn(message)
        if result.failure is not None:
            sink.case_failed(job.without(self._written), result.failure)

    def _on_failure(self, job: CaseJob, error: BaseException, sink: CaseSink) -> None:
        from distributed import KilledWorker

        from qpbench.runner.dask_worker import WorkerRefusedError

        if isinstance(error, WorkerRefusedError):  # a worker that joined after the start-up check
            raise WorkerRefusedError(f"a Dask worker must not measure this run: {error}; finished rows are kept")
        remaining = job.without(self._written)
        if not isinstance(error, KilledWorker):
            sink.case_failed(remaining, f"{job.case.case_id}: the Dask task failed: {type(error).__name__}: {error}")
            return
        started = self._started.pop(job.index, None)
        if started is None or tuple(started["key"]) in self._written:
            sink.case_failed(
                remaining,
                f"{job.case.case_id}: the Dask worker running the case was lost outside a measurement "
                f"({_first_line(error)})",
            )
            return
        lost = json.loads(started["row"])
        lost["error"] = (
            f"the Dask worker measuring it ({started['worker']}) was lost: the process died (killed, out of memory, "
            "or its machine went away)"
        )
        lost["timestamp"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        self._write(lost, sink)
        rest = remaining.without(self._written)
        if rest.pending:
            self._submit(rest)

    # ------------------------------------------------------------------------- record and close
    def record(self) -> dict[str, Any]:
        if self._client is None:
            return {}
        return {
            "dask": {
                "scheduler": str(self._client.scheduler.address),
                "local_cluster": self.settings.choice.address is None,
                "one_measurement_at_a_time_by": "resource qpbench=1" if self._use_resource else "one thread per worker",
                "workers": [self._identities[a].summary() for a in sorted(self._identities)],
            }
        }

    def close(self) -> None:
        """Stop what is still running: cancel the cases left on someone else's cluster (their
        workers stop before the next measurement); a LocalCluster of our own is simply closed."""
        try:
            if self._client is not None:
                self._client.unsubscribe_topic(self._topic)  # no more rows: the run is over
                if self._futures and self.settings.choice.address is not None:
                    self._client.cancel(list(self._futures.values()))
        finally:
            self._futures.clear()
            self._stack.close()


def _task_error(future: Any) -> BaseException:
    if future.status == "cancelled":
        return RuntimeError("the task was cancelled (the scheduler restarted or the client lost it)")
    try:
        return future.exception()
    except Exception as exc:  # the error itself could not be fetched
        return exc


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"[:300]
