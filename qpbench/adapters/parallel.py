"""Run a per-problem CPU adapter on several worker processes: ``<solver>@<workers>``.

Each worker process owns one contiguous chunk of the batch for the lifetime of a prepared object:
``setup`` starts the processes (spawn by default, fork on request) and has every worker run the
base adapter's setup on its chunk (so OSQP setup, CVXPY compilation, ... stay in setup and in the
worker); ``solve`` asks every worker to solve its chunk and stitches the outputs in batch order.
This makes "a batched solver vs. a CPU solver on every core" a fair comparison. Each worker pins
torch to one thread. The processes end when the prepared object is garbage collected or
``close()``-d.
"""

from __future__ import annotations

import itertools
import multiprocessing
import uuid
import weakref
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch

from qpbench.adapters._common import UNLIMITED, check_supported
from qpbench.adapters.base import Adapter, SolveOutput, Tolerance
from qpbench.problem import NAMES, QPBatch

START_METHODS = ("spawn", "fork", "forkserver")

# Per worker process: prepared chunks by token.
_WORKER_STATE: dict[str, tuple[Adapter, Any]] = {}


def _worker_setup(token: str, base_name: str, arrays: dict[str, np.ndarray], tolerance: str,
                  time_limit: float) -> None:
    from qpbench.adapters.registry import get_adapter

    torch.set_num_threads(1)
    chunk = QPBatch(**{k: torch.from_numpy(v) for k, v in arrays.items()}, check="none")
    adapter = get_adapter(base_name)
    _WORKER_STATE[token] = (adapter, adapter.setup(chunk, tolerance, time_limit))


def _worker_solve(token: str) -> SolveOutput:
    adapter, prepared = _WORKER_STATE[token]
    return adapter.solve(prepared)


def chunk_bounds(batch_size: int, workers: int) -> list[tuple[int, int]]:
    """Contiguous, nearly equal [start, stop) chunks; never more chunks than problems."""
    count = min(workers, batch_size)
    edges = np.linspace(0, batch_size, count + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in itertools.pairwise(edges)]


def _shutdown(executors: list[ProcessPoolExecutor]) -> None:
    for ex in executors:
        ex.shutdown(wait=False, cancel_futures=True)


@dataclass
class _Prepared:
    token: str
    executors: list[ProcessPoolExecutor]
    bounds: list[tuple[int, int]]
    n: int
    m: int
    k: int
    _finalizer: Any = field(default=None, repr=False)

    def close(self) -> None:
        if self._finalizer is not None:
            self._finalizer()


class WorkersAdapter(Adapter):
    """``base`` (a per-problem adapter) run on ``workers`` processes, one chunk of the batch each."""

    def __init__(self, base: Adapter, workers: int, start_method: str = "spawn") -> None:
        if base.capabilities.batched:
            raise ValueError(
                f"workers: {base.name} is batched already; only per-problem solvers take @workers"
            )
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise ValueError(f"workers must be a positive int, got {workers!r}")
        if start_method not in START_METHODS:
            raise ValueError(f"start_method must be one of {START_METHODS}, got {start_method!r}")
        self.base = base
        self.workers = workers
        self.start_method = start_method
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
        context = multiprocessing.get_context(self.start_method)
        executors = [ProcessPoolExecutor(max_workers=1, mp_context=context) for _ in bounds]
        token = uuid.uuid4().hex
        prepared = _Prepared(token, executors, bounds, batch.n, batch.m, batch.k)
        prepared._finalizer = weakref.finalize(prepared, _shutdown, executors)
        try:
            futures = []
            for ex, (start, stop) in zip(executors, bounds, strict=True):
                chunk = batch[start:stop]
                arrays = {k: chunk.expanded(k).detach().to("cpu", torch.float64).numpy() for k in NAMES}
                futures.append(ex.submit(_worker_setup, token, self.base.name, arrays, level, time_limit))
            for fut in futures:
                fut.result()
        except BaseException:
            prepared.close()
            raise
        return prepared

    def solve(self, prepared: _Prepared) -> SolveOutput:
        futures = [ex.submit(_worker_solve, prepared.token) for ex in prepared.executors]
        outputs = [fut.result() for fut in futures]
        return _concatenate(outputs, prepared.bounds)


def _concatenate(outputs: list[SolveOutput], bounds: list[tuple[int, int]]) -> SolveOutput:
    def cat(values: list[Any]) -> Any:
        return None if any(v is None for v in values) else torch.cat(values)

    iterations = [o.iterations for o in outputs]
    errors = {}
    for out, (start, _) in zip(outputs, bounds, strict=True):
        for i, message in out.info.get("errors", {}).items():
            errors[start + i] = message
    return SolveOutput(
        z=torch.cat([o.z for o in outputs]),
        status=np.concatenate([np.asarray(o.status, dtype=np.int64) for o in outputs]),
        lam=cat([o.lam for o in outputs]),
        nu=cat([o.nu for o in outputs]),
        iterations=None if any(i is None for i in iterations) else np.concatenate(iterations),
        info={"errors": errors, "workers": len(outputs)} if errors else {"workers": len(outputs)},
    )
