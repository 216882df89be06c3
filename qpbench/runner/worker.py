"""Fault isolation: measurements run in a worker process that the runner can lose.

Why a subprocess: a solver can raise, hang in C code that no Python signal interrupts, exhaust
memory, or kill its interpreter (segfault, abort, ``os._exit``). In a worker process each of these
costs only that measurement: the runner sees an error message, a missed deadline, or a dead
process, records the row with the outcome and reason, and starts a fresh worker for the next one.

Why 'forkserver' (else 'spawn'): forking the runner itself, which has already started torch's
thread pools (and possibly CUDA), can deadlock or break CUDA in the child. A forkserver is a clean
process that imports torch and qpbench once (seconds on a busy machine) and forks each worker
from that state, so replacing a crashed worker costs milliseconds; 'spawn' (a fresh interpreter
per worker) is the fallback where forkserver does not exist. One worker is reused across
measurements while it stays healthy and replaced only after a crash or timeout; per-measurement
overhead is then a pipe round trip plus pickling the batch's arrays.

Deadlines are per step: the worker reports each step (setup, each solve) before starting it, and
the runner allows ``time_limit + grace`` seconds per step, so a slow but live solver is not cut
off for the sum of its repeats, while a hung one is stopped soon after its limit.

:class:`InProcessWorker` runs measurements in the runner's own process: lower overhead, easier
debugging, and one CUDA context for the whole run (each worker process would create its own, which
costs time and GPU memory). It can stop a hang only in Python code (SIGALRM) and cannot survive a
crash.
"""

from __future__ import annotations

import multiprocessing
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from multiprocessing.connection import Connection, wait
from typing import Any, Protocol

import numpy as np
import torch

from qpbench.problem import NAMES, QPBatch
from qpbench.runner.measure import run_measurement

_OOM_ERRORS: tuple[type[BaseException], ...] = (
    MemoryError,
    getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError),
)


class MeasurementError(Exception):
    """A measurement that did not finish; ``outcome`` is a results-table outcome."""

    def __init__(self, outcome: str, reason: str) -> None:
        super().__init__(reason)
        self.outcome = outcome
        self.reason = reason


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:500]


def _classify(exc: BaseException) -> MeasurementError:
    if isinstance(exc, MeasurementError):
        return exc
    return MeasurementError("oom" if isinstance(exc, _OOM_ERRORS) else "failed", _describe(exc))


class Executor(Protocol):
    """Where measurements run. The runner hands each one over and gets the raw result back (or a
    MeasurementError with a results-table outcome); how and where it runs is the executor's."""

    kind: str  # recorded in each row's 'worker' column

    def measure(
        self, spec: str, batch: QPBatch, tolerance: str, time_limit: float, warmups: int, repeats: int
    ) -> dict[str, Any]: ...

    def close(self) -> None: ...


# ----------------------------------------------------------------------------- batch transport
def pack_batch(batch: QPBatch) -> dict[str, Any]:
    """Plain arrays for the pipe (shared tensors stay unbatched)."""
    meta = {k: v for k, v in batch.meta.items() if isinstance(v, str | int | float | bool | type(None))}
    return {
        "arrays": {name: t.detach().cpu().numpy() for name, t in batch.tensors().items()},
        "device": str(batch.device),
        "name": batch.name,
        "meta": meta,
    }


def unpack_batch(packed: dict[str, Any]) -> QPBatch:
    tensors = {name: torch.from_numpy(np.ascontiguousarray(packed["arrays"][name])) for name in NAMES}
    batch = QPBatch(**tensors, name=packed["name"], meta=packed["meta"], check="none")
    return batch.to(device=packed["device"])


# ----------------------------------------------------------------------------- the worker process
def _worker_main(conn: Connection) -> None:
    # Ctrl-C reaches the whole process group; the runner decides, and stops this worker itself.
    # Threads are pinned per measurement (each job carries the count; see run_measurement).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    conn.send(("ready",))
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):
            return
        if job is None:
            return
        try:
            batch = unpack_batch(job.pop("batch"))
            raw = run_measurement(batch=batch, phase=lambda name: conn.send(("phase", name)), **job)
            conn.send(("done", raw))
        except BaseException as exc:
            err = _classify(exc)
            conn.send(("error", err.outcome, err.reason))


def _death_reason(exitcode: int | None) -> str:
    if exitcode is None:
        return "worker process stopped responding"
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        hint = " (possibly the out-of-memory killer)" if name == "SIGKILL" else ""
        return f"worker process killed by {name}{hint}"
    return f"worker process exited with code {exitcode}"


def _context() -> Any:
    """forkserver where the platform has it (Linux): the clean server process imports torch and
    qpbench once, and each worker, first or replacement, is a cheap fork of it; else spawn."""
    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload([__name__])
        return ctx
    return multiprocessing.get_context("spawn")


class SubprocessWorker:
    """One spawned worker process, reused across measurements and replaced when lost."""

    kind = "subprocess"

    def __init__(self, threads: int | None = None, grace: float = 5.0, load_timeout: float = 120.0) -> None:
        self.threads = threads
        self.grace = grace
        self.load_timeout = load_timeout
        self._ctx = _context()
        self._proc: Any = None
        self._conn: Connection | None = None
        self._packed: tuple[QPBatch, dict[str, Any]] | None = None  # the last batch sent, packed once per case
        self.restarts = 0

    def _start(self) -> None:
        parent, child = self._ctx.Pipe()
        proc = self._ctx.Process(target=_worker_main, args=(child,), daemon=True)
        proc.start()
        child.close()
        self._proc, self._conn = proc, parent
        msg = self._receive(self.load_timeout, "worker start-up", 0.0)
        if msg[0] != "ready":
            self._kill()
            raise MeasurementError("crashed", f"worker sent {msg[0]!r} instead of ready")

    def _receive(self, limit: float, phase: str, time_limit: float) -> tuple[Any, ...]:
        assert self._conn is not None and self._proc is not None
        ready = wait([self._conn, self._proc.sentinel], timeout=limit)
        if self._conn in ready:
            try:
                return self._conn.recv()
            except (EOFError, OSError):
                pass
        if ready:  # the process ended without a message
            self._proc.join(1.0)
            code = self._proc.exitcode
            self._kill()
            raise MeasurementError("crashed", f"{_death_reason(code)} during {phase}")
        self._kill()
        limit_text = f" (time limit {time_limit:g} s per step)" if time_limit else ""
        raise MeasurementError("timeout", f"no progress for {limit:.3g} s during {phase}{limit_text}")

    def measure(
        self, spec: str, batch: QPBatch, tolerance: str, time_limit: float, warmups: int, repeats: int
    ) -> dict[str, Any]:
        if self._proc is None or not self._proc.is_alive():
            self._kill()
            self._start()
        assert self._conn is not None
        if self._packed is None or self._packed[0] is not batch:  # every solver of a case gets the same batch
            self._packed = (batch, pack_batch(batch))
        job = {
            "spec": spec,
            "batch": self._packed[1],
            "tolerance": tolerance,
            "time_limit": time_limit,
            "warmups": warmups,
            "repeats": repeats,
            "threads": self.threads,
        }
        try:
            self._conn.send(job)
        except (BrokenPipeError, OSError) as exc:
            self._kill()
            raise MeasurementError("crashed", f"could not send the job to the worker: {exc}") from None
        phase, limit = "loading the solver", self.load_timeout
        while True:
            msg = self._receive(limit, phase, time_limit)
            if msg[0] == "phase":
                phase, limit = msg[1], time_limit + self.grace
            elif msg[0] == "done":
                return msg[1]
            elif msg[0] == "error":
                raise MeasurementError(msg[1], msg[2])

    def stop_measurement(self) -> None:
        """Kill the measurement in progress, from another thread (whoever asked for it has gone:
        a cluster's client cancelled the case). The waiting ``measure`` reports a crash, and the
        next measurement starts a fresh process."""
        proc = self._proc
        if proc is not None and proc.is_alive():
            proc.kill()

    def _kill(self) -> None:
        proc, conn = self._proc, self._conn
        self._proc = self._conn = None
        if conn is not None:
            conn.close()
        if proc is None:
            return
        if proc.is_alive():
            self.restarts += 1
            proc.terminate()
            proc.join(2.0)
            if proc.is_alive():
                proc.kill()
                proc.join(2.0)
        proc.close()

    def close(self) -> None:
        if self._proc is not None and self._proc.is_alive() and self._conn is not None:
            try:
                self._conn.send(None)
                self._proc.join(2.0)
            except (BrokenPipeError, OSError):
                pass
        self._kill()
        self._packed = None


class _StepTimeoutError(Exception):
    pass


class InProcessWorker:
    """Measurements in this process; SIGALRM enforces the per-step limit in Python code only."""

    kind = "in-process"

    def __init__(self, threads: int | None = None, grace: float = 5.0) -> None:
        self.threads = threads
        self.grace = grace

    def measure(
        self, spec: str, batch: QPBatch, tolerance: str, time_limit: float, warmups: int, repeats: int
    ) -> dict[str, Any]:
        state = {"phase": "loading the solver"}
        limit = time_limit + self.grace

        def phase(name: str) -> None:
            state["phase"] = name
            _rearm(limit)

        try:
            with _alarm_guard():
                _rearm(limit)
                return run_measurement(spec, batch, tolerance, time_limit, warmups, repeats, self.threads, phase)
        except _StepTimeoutError:
            raise MeasurementError(
                "timeout",
                f"no progress for {limit:.3g} s during {state['phase']} (time limit {time_limit:g} s per step)",
            ) from None
        except KeyboardInterrupt:
            raise
        except Exception as exc:
            raise _classify(exc) from None

    def close(self) -> None:
        return None


def _alarms_usable() -> bool:
    return hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()


def _rearm(seconds: float) -> None:
    if _alarms_usable():
        signal.setitimer(signal.ITIMER_REAL, seconds)


@contextmanager
def _alarm_guard() -> Iterator[None]:
    if not _alarms_usable():
        yield
        return

    def on_alarm(_signum: int, _frame: Any) -> None:
        raise _StepTimeoutError

    previous = signal.signal(signal.SIGALRM, on_alarm)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def make_worker(in_process: bool, threads: int | None, grace: float = 5.0) -> Executor:
    """The local executors: a worker process (crash isolation), or the runner's own process."""
    return InProcessWorker(threads, grace) if in_process else SubprocessWorker(threads, grace)


def worker_kind(in_process: bool) -> str:
    return InProcessWorker.kind if in_process else SubprocessWorker.kind
