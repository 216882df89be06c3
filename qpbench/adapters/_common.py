"""Shared plumbing for adapters: per-problem NumPy data, looping, stacking results."""

from __future__ import annotations

import abc
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from qpbench.adapters.base import Adapter, Capabilities, SolveOutput, Tolerance
from qpbench.problem import NAMES, QPBatch
from qpbench.status import Status

# Large finite stand-in for "no bound" where a solver wants explicit lower bounds.
INFINITY = 1e20
UNLIMITED = float("inf")  # default time limit


@dataclass
class ProblemArrays:
    """One problem of a batch as contiguous float64 NumPy arrays (G/A may have 0 rows)."""

    Q: np.ndarray
    p: np.ndarray
    G: np.ndarray
    h: np.ndarray
    A: np.ndarray
    b: np.ndarray

    @property
    def n(self) -> int:
        return self.p.shape[0]

    @property
    def m(self) -> int:
        return self.h.shape[0]

    @property
    def k(self) -> int:
        return self.b.shape[0]


def batch_arrays(batch: QPBatch) -> dict[str, np.ndarray]:
    """The six tensors of ``batch``, each with its batch dimension, as NumPy float64 on the CPU."""
    return {name: batch.expanded(name).detach().to("cpu", torch.float64).numpy() for name in NAMES}


def split_problems(batch: QPBatch) -> list[ProblemArrays]:
    """Every problem of ``batch`` as NumPy float64 arrays on the CPU."""
    arrays = batch_arrays(batch)
    return [
        ProblemArrays(**{name: np.ascontiguousarray(arr[i]) for name, arr in arrays.items()})
        for i in range(batch.batch_size)
    ]


def conic_rows(data: ProblemArrays) -> tuple[np.ndarray, np.ndarray]:
    """[A; G] and [b; h]: equality rows first, then the inequality rows (G and A always have n columns)."""
    return np.vstack([data.A, data.G]), np.concatenate([data.b, data.h])


def derived_status(finite: np.ndarray, converged: np.ndarray) -> np.ndarray:
    """Status for a package that reports none: SOLVED where its own stopping test holds, MAX_ITER
    where it does not, NUMERICAL_ERROR where the answer is not finite."""
    return np.where(
        finite, np.where(converged, int(Status.SOLVED), int(Status.MAX_ITER)), int(Status.NUMERICAL_ERROR)
    ).astype(np.int64)


def check_supported(adapter: Adapter, batch: QPBatch) -> None:
    """Raise ValueError when ``adapter`` cannot take ``batch`` (the runner checks first)."""
    reason = adapter.unsupported_reason(batch)
    if reason is not None:
        raise ValueError(f"batch: {adapter.name} cannot take {batch!r}: {reason}")


@dataclass
class OneResult:
    """Outcome of one problem from a per-problem solver."""

    status: Status
    z: np.ndarray | None = None
    lam: np.ndarray | None = None  # (m,) for G z <= h, >= 0
    nu: np.ndarray | None = None  # (k,) for A z = b
    iterations: int | None = None
    error: str = ""


def stack_results(results: list[OneResult], n: int, m: int, k: int) -> SolveOutput:
    """Stack per-problem results into one SolveOutput; missing values become NaN (status says why)."""

    def stack(values: list[np.ndarray | None], size: int) -> torch.Tensor:
        rows = [np.full(size, np.nan) if v is None else np.asarray(v, dtype=np.float64) for v in values]
        return torch.from_numpy(np.stack(rows).reshape(len(values), size))

    has_lam = any(r.lam is not None for r in results) or m == 0
    has_nu = any(r.nu is not None for r in results) or k == 0
    iterations = [r.iterations for r in results]
    errors = {i: r.error for i, r in enumerate(results) if r.error}
    return SolveOutput(
        z=stack([r.z for r in results], n),
        status=np.array([int(r.status) for r in results], dtype=np.int64),
        lam=stack([r.lam for r in results], m) if has_lam else None,
        nu=stack([r.nu for r in results], k) if has_nu else None,
        iterations=None if any(i is None for i in iterations) else np.array(iterations, dtype=np.int64),
        info={"errors": errors} if errors else {},
    )


@dataclass
class _SetupFailed:
    error: str


@dataclass
class LoopedPrepared:
    """What a per-problem adapter's setup returns: one prepared item per problem."""

    items: list[Any]
    options: dict[str, Any]
    n: int
    m: int
    k: int
    time_limit: float = UNLIMITED


class LoopedAdapter(Adapter):
    """An adapter for a solver that takes one problem at a time (CPU, float64, NumPy).

    ``setup`` converts every problem (and builds the solver object where the solver separates
    setup from solve); ``solve`` loops over the problems within the batch's time limit. An
    exception from the solver on one problem becomes that problem's NUMERICAL_ERROR, never a
    crash of the batch.
    """

    capabilities = Capabilities(batched=False, differentiable=False)

    def setup(self, batch: QPBatch, tolerance: Tolerance | str, time_limit: float = UNLIMITED) -> Any:
        check_supported(self, batch)
        options = self.options(Tolerance.parse(tolerance), time_limit)
        items: list[Any] = []
        for data in split_problems(batch):
            try:
                items.append(self.prepare_one(data, options))
            except Exception as exc:  # the solver refused this problem: its status, not a crash
                items.append(_SetupFailed(f"{type(exc).__name__}: {exc}"))
        return LoopedPrepared(items, options, batch.n, batch.m, batch.k, time_limit)

    def solve(self, prepared: LoopedPrepared) -> SolveOutput:
        # The time limit is for the whole batch (the runner's limit is per solve step): each
        # problem also gets it as the solver's own limit, and once it is spent the problems not
        # yet started are TIME_LIMIT without being tried.
        start = time.perf_counter()
        results = []
        for item in prepared.items:
            if time.perf_counter() - start >= prepared.time_limit:
                results.append(OneResult(Status.TIME_LIMIT, error="batch time limit spent before this problem"))
                continue
            if isinstance(item, _SetupFailed):
                results.append(OneResult(Status.NUMERICAL_ERROR, error=f"setup: {item.error}"))
                continue
            try:
                results.append(self.solve_one(item, prepared.options))
            except Exception as exc:  # a solver failure is a per-problem status
                results.append(OneResult(Status.NUMERICAL_ERROR, error=f"{type(exc).__name__}: {exc}"))
        return stack_results(results, prepared.n, prepared.m, prepared.k)

    def prepare_one(self, data: ProblemArrays, options: dict[str, Any]) -> Any:
        """Per-problem setup (default: the NumPy conversion only)."""
        return data

    @abc.abstractmethod
    def solve_one(self, item: Any, options: dict[str, Any]) -> OneResult:
        """Solve one prepared problem."""


def time_limit_option(key: str, time_limit: float | None) -> dict[str, float]:
    """A solver's own time-limit option: ``{key: seconds}``, or nothing when unlimited (inf or None)."""
    if time_limit is None or not np.isfinite(time_limit):
        return {}
    return {key: float(time_limit)}
