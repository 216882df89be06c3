"""Wall-clock timing by the measurement rules (docs/architecture.md, "Measurement rules").

* warm-up calls first (caches, lazy imports, CUDA context and kernels), never timed;
* every timed call is bracketed by a device synchronize, because CUDA kernels run
  asynchronously and the host clock would otherwise stop before the work is done;
* the torch thread count is pinned for the measurement and reported;
* a summary always carries the spread (min, median, max), never a mean alone.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import torch

T = TypeVar("T")


def synchronize(device: torch.device | str | None) -> None:
    """Wait for queued kernels on ``device`` (a no-op on the CPU)."""
    if device is None:
        return
    dev = torch.device(device)
    if dev.type == "cuda" and torch.cuda.is_available():
        torch.cuda.synchronize(dev)


@contextmanager
def pinned_threads(threads: int | None) -> Iterator[int]:
    """Run the block with ``torch.set_num_threads(threads)``; yields the count in effect.

    ``None`` or 0 keeps torch's current setting (which is still reported).
    """
    if threads is not None and threads < 0:
        raise ValueError(f"threads must be >= 0, got {threads}")
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        yield torch.get_num_threads()
    finally:
        if threads:
            torch.set_num_threads(before)


@dataclass(frozen=True)
class TimingStats:
    """Seconds of each timed repeat and their spread."""

    times: tuple[float, ...]

    def __post_init__(self) -> None:
        if not self.times:
            raise ValueError("times must hold at least one measurement")

    @property
    def median(self) -> float:
        return float(statistics.median(self.times))

    @property
    def min(self) -> float:
        return float(min(self.times))

    @property
    def max(self) -> float:
        return float(max(self.times))

    @property
    def repeats(self) -> int:
        return len(self.times)


def timed_call(fn: Callable[[], T], device: torch.device | str | None = None) -> tuple[T, float]:
    """Call ``fn`` once; return its result and the seconds it took, synchronized on ``device``."""
    synchronize(device)
    start = time.perf_counter()
    result = fn()
    synchronize(device)
    return result, time.perf_counter() - start


def measure(
    fn: Callable[[], T],
    *,
    repeats: int,
    warmups: int = 1,
    device: torch.device | str | None = None,
    budget: float | None = None,
) -> tuple[T, TimingStats]:
    """Run ``fn`` ``warmups`` times untimed, then ``repeats`` timed; return the last result.
    With ``budget`` (seconds), the timed calls stop early once they have spent it (at least one
    always runs), so that a slow solver's case stays bounded."""
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    if warmups < 0:
        raise ValueError(f"warmups must be >= 0, got {warmups}")
    for _ in range(warmups):
        fn()
    times = []
    result: Any = None
    while len(times) < repeats and (budget is None or not times or sum(times) < budget):
        result, seconds = timed_call(fn, device)
        times.append(seconds)
    return result, TimingStats(tuple(times))


def interleaved_ratio(
    reference: Callable[[], Any],
    other: Callable[[], Any],
    *,
    rounds: int,
    device: torch.device | str | None = None,
) -> TimingStats:
    """``other``'s time over ``reference``'s, one ratio per round, both timed back to back in
    each round (no warm-up: the callers have run both already).

    On a shared machine the speed drifts by tens of percent over minutes, rarely within the
    seconds of one round, so the ratio of two calls made together varies much less than the
    ratio of two medians taken minutes apart. The order alternates from round to round, so that
    a drift within a round favours neither side. The stats hold the ratios, not seconds.
    """
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds}")
    ratios = []
    for r in range(rounds):
        if r % 2 == 0:
            t_ref, t_other = timed_call(reference, device)[1], timed_call(other, device)[1]
        else:
            t_other, t_ref = timed_call(other, device)[1], timed_call(reference, device)[1]
        ratios.append(t_other / max(t_ref, 1e-12))
    return TimingStats(tuple(ratios))


def calibration_time(
    batch_size: int,
    n: int,
    *,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str = "cpu",
    repeats: int = 7,
    seed: int = 0,
    steps: int = 10,
) -> float:
    """Fastest of ``repeats`` timings of a fixed imitation of ``steps`` interior-point iterations
    at (B, n).

    It is the machine's yardstick for a case of this size: a regression check divides a solver's
    time by it, so that a slower or busier CI machine does not read as a slower solver. Each step
    forms X diag(w) X' + I (a batched product), factors it (batched Cholesky), makes two
    triangular solves and a dozen small element-wise ops and reductions on (B, n) vectors: the op
    mix of a solver iteration, so that at small sizes, where a solve is mostly per-op dispatch,
    the yardstick moves with dispatch speed too. (A single Cholesky took tens of microseconds at
    n = 20 and its median moved 2x between quiet runs, which set the check's noise margins.) The
    code is fixed and independent of the solver; the input is drawn once, outside the clock.
    The minimum, not the median: load only ever adds time, so the fastest run is the cleanest
    measure of the machine (medians of 5 moved 1.7x between runs on a host with bursts of steal).
    """
    if batch_size < 1 or n < 1:
        raise ValueError(f"batch_size and n must be >= 1, got batch_size={batch_size}, n={n}")
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    gen = torch.Generator().manual_seed(seed)
    X = (torch.randn(batch_size, n, n, generator=gen, dtype=torch.float64) / n**0.5).to(dtype=dtype, device=device)
    v0 = torch.rand(batch_size, n, generator=gen, dtype=torch.float64).to(dtype=dtype, device=device) + 0.5

    def kernel() -> torch.Tensor:
        v, w = v0.clone(), v0.clone()
        for _ in range(steps):
            M = torch.matmul(X * w.unsqueeze(-2), X.mT)
            M.diagonal(dim1=-2, dim2=-1).add_(1.0)
            L, _ = torch.linalg.cholesky_ex(M)
            u = torch.linalg.solve_triangular(L, v.unsqueeze(-1), upper=False)
            u = torch.linalg.solve_triangular(L.mT, u, upper=True).squeeze(-1)
            scale = u.abs().amax(-1, keepdim=True).clamp_min(1e-30)
            v = torch.where(u > 0, u / scale, -u / scale) + 0.5
            step = torch.minimum((v / w).amin(-1, keepdim=True), torch.ones_like(scale))
            w = (w * (1 - 0.5 * step) + 0.5 * step * v).clamp(0.1, 10.0)
        return w

    _, stats = measure(kernel, repeats=repeats, warmups=1, device=device)
    return stats.min
