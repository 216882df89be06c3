"""Run a per-problem CPU adapter on several worker processes: ``<solver>@<workers>``.

Each worker process owns one contiguous chunk of the batch for the lifetime of a prepared object:
``setup`` starts the processes and has every worker run the base adapter's setup on its chunk (so
OSQP setup, CVXPY compilation, ... stay in setup, inside the worker); ``solve`` asks every worker
to solve its chunk, all at once, and stitches the outputs in batch order. This makes "a batched
solver vs. a CPU solver on every core" a fair comparison. Each worker pins torch to one thread.

Workers are plain subprocesses (``python -m qpbench.adapters._worker``), not multiprocessing
children, so the wrapper also works inside the runner's daemonic worker processes, which may not
have multiprocessing children. They end when the prepared object is closed or garbage collected.
"""

from __future__ import annotations

import contextlib
import itertools
import subprocess
import sys
import weakref
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch

from qpbench.adapters._common import UNLIMITED, batch_arrays, check_supported
from qpbench.adapters._worker import receive, send
from qpbench.adapters.base import Adapter, SolveOutput, Tolerance
from qpbench.problem import QPBatch


def chunk_bounds(batch_size: int, workers: int) -> list[tuple[int, int]]:
    """Contiguous, nearly equal [start, stop) chunks; never more chunks than problems."""
    count = min(workers, batch_size)
    edges = np.linspace(0, batch_size, count + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in itertools.pairwise(edges)]


def _stop(processes: list[subprocess.Popen]) -> None:
    for proc in processes:
        if proc.stdin is not None and not proc.stdin.closed:
            with contextlib.suppress(OSError):  # already gone
                proc.stdin.close()  # end of requests: the worker returns
    for proc in processes:
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


@dataclass
class _Prepared:
    processes: list[subprocess.Popen]
    bounds: list[tuple[int, int]]
    _finalizer: Any = field(default=None, repr=False)

    def close(self) -> None:
        if self._finalizer is not None:
            self._finalizer()


def _reply(proc: subprocess.Popen, what: str) -> Any:
    try:
        kind, value = receive(proc.stdout)
    except EOFError:
        raise RuntimeError(f"worker process {proc.pid} died during {what} (exit code {proc.poll()})") from None
    if kind != "ok":
        raise RuntimeError(f"worker process {proc.pid} failed during {what}:\n{value}")
    return value


class WorkersAdapter(Adapter):
    """``base`` (a per-problem adapter) run on ``workers`` processes, one chunk of the batch each."""

    def __init__(self, base: Adapter, workers: int) -> None:
        if base.capabilities.batched:
            raise ValueError(
                f"workers: {base.name} is batched already; only per-problem solvers take @workers"
            )
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise ValueError(f"workers must be a positive int, got {workers!r}")
        self.base = base
        self.workers = workers
        self.name = f"{base.name}@{workers}"
        self.package = base.package
        self.capabilities = replace(base.capabilities, devices=("cpu",))

    def availability(self) -> tuple[bool, str]:
        return self.base.availability()

    def version(self) -> str:
        return self.base.version()

    def unsupported_reason(self, batch: QPBatch, device: str | None = None) -> str | None:
        return self.base.unsupported_reason(batch, device)

    def options(self, tolerance: Tolerance, time_limit: float) -> dict[str, Any]:
        return self.base.options(tolerance, time_limit)

    def setup(self, batch: QPBatch, tolerance: Tolerance | str, time_limit: float = UNLIMITED) -> _Prepared:
        check_supported(self, batch)
        level = Tolerance.parse(tolerance).value
        bounds = chunk_bounds(batch.batch_size, self.workers)
        processes: list[subprocess.Popen] = []
        prepared = _Prepared(processes, bounds)
        prepared._finalizer = weakref.finalize(prepared, _stop, processes)
        try:
            # Start every process before feeding any: each imports torch first, in parallel.
            for _ in bounds:
                processes.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "qpbench.adapters._worker"],
                        stdin=subprocess.PIPE,
                        stdout=subprocess.PIPE,
                    )
                )
            for proc, (start, stop) in zip(processes, bounds, strict=True):
                arrays = batch_arrays(batch[start:stop])
                send(proc.stdin, ("setup", self.base.name, arrays, level, time_limit))
            for proc in processes:
                _reply(proc, "setup")
        except BaseException:
            prepared.close()
            raise
        return prepared

    def solve(self, prepared: _Prepared) -> SolveOutput:
        for proc in prepared.processes:  # all workers start before any answer is read
            send(proc.stdin, ("solve",))
        outputs = [_reply(proc, "solve") for proc in prepared.processes]
        return _concatenate(outputs, prepared.bounds)


def _concatenate(outputs: list[SolveOutput], bounds: list[tuple[int, int]]) -> SolveOutput:
    def cat(values: list[Any]) -> Any:
        return None if any(v is None for v in values) else torch.cat(values)

    iterations = [o.iterations for o in outputs]
    errors = {}
    for out, (start, _) in zip(outputs, bounds, strict=True):
        for i, message in out.info.get("errors", {}).items():
            errors[start + i] = message
    info: dict[str, Any] = {"workers": len(outputs)}
    if errors:
        info["errors"] = errors
    return SolveOutput(
        z=torch.cat([o.z for o in outputs]),
        status=np.concatenate([np.asarray(o.status, dtype=np.int64) for o in outputs]),
        lam=cat([o.lam for o in outputs]),
        nu=cat([o.nu for o in outputs]),
        iterations=None if any(i is None for i in iterations) else np.concatenate(iterations),
        info=info,
    )
