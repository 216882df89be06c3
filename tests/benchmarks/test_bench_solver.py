"""pytest-benchmark timings of the in-house solver: its key kernels and end-to-end solves.

Deselected by default (the ``benchmark`` marker); run them with ``tox -e benchmarks`` or

    pytest -m benchmark tests/benchmarks --benchmark-autosave

which saves JSON under ``.benchmarks/``. ``--benchmark-compare --benchmark-compare-fail=median:20%``
then compares absolute times against the last saved run: useful on one quiet machine, noisy on
shared ones. The CI gate is ``qpbench compare`` (builds timed interleaved); see docs/regression.md.

Every benchmark checks what it computed, so a kernel that got fast by getting wrong cannot pass.
Times on CUDA include a device synchronize, so queued work is not mistaken for finished work.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch

from qpbench.generators import generate
from qpbench.problem import QPBatch
from qpbench.solver import SolverSettings, solve
from qpbench.status import Status

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
N = M = 50  # optnet_random sizes of OptNet's timing figure
ON_DEVICES = pytest.mark.parametrize("device", DEVICES)
IN_DTYPES = pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
AT_BATCH_SIZES = pytest.mark.parametrize("batch_size", [1, 64])


def synchronized(fn: Callable[[], Any], device: str) -> Callable[[], Any]:
    """``fn`` followed by a device synchronize (CUDA launches return before the work is done)."""
    if device != "cuda":
        return fn

    def run() -> Any:
        out = fn()
        torch.cuda.synchronize()
        return out

    return run


def problem_batch(batch_size: int, dtype: torch.dtype, device: str, seed: int = 0) -> QPBatch:
    return generate("optnet_random", batch_size, N, M, 0, seed, dtype, device)


def interior_weights(batch: QPBatch, seed: int = 1) -> torch.Tensor:
    """Positive w = lam / s as an interior-point iteration sees them: spread over decades,
    since some constraints are nearly active (large w) and others far from it (small w)."""
    gen = torch.Generator().manual_seed(seed)
    exponent = torch.empty(batch.batch_size, batch.m, dtype=torch.float64).uniform_(-4, 4, generator=gen)
    return (10.0**exponent).to(dtype=batch.dtype, device=batch.device)


def reduced_matrix(Q: torch.Tensor, G: torch.Tensor, w: torch.Tensor, rho: float) -> torch.Tensor:
    """H = Q + G' diag(w) G + rho I: the n x n matrix the primal KKT form factors each iteration."""
    H = torch.baddbmm(Q, G.transpose(1, 2) * w.unsqueeze(1), G)
    H.diagonal(dim1=-2, dim2=-1).add_(rho)
    return H


# ----------------------------------------------------------------------------- kernels


@pytest.mark.benchmark(group="kernel: form Q + G'WG")
@ON_DEVICES
@AT_BATCH_SIZES
def test_form_reduced_matrix(benchmark: Any, batch_size: int, device: str) -> None:
    batch = problem_batch(batch_size, torch.float64, device)
    Q, G, w = batch.expanded("Q"), batch.expanded("G"), interior_weights(batch)
    H = benchmark(synchronized(lambda: reduced_matrix(Q, G, w, 1e-9), device))
    expected = Q[0] + G[0].T @ torch.diag(w[0]) @ G[0] + 1e-9 * torch.eye(N, dtype=Q.dtype, device=device)
    torch.testing.assert_close(H[0], expected)
    threads = torch.get_num_threads()
    benchmark.extra_info.update(n=N, m=M, batch_size=batch_size, device=device, threads=threads)


@pytest.mark.benchmark(group="kernel: batched Cholesky of the reduced system")
@ON_DEVICES
@IN_DTYPES
@AT_BATCH_SIZES
def test_cholesky_of_reduced_matrix(benchmark: Any, batch_size: int, dtype: torch.dtype, device: str) -> None:
    batch = problem_batch(batch_size, dtype, device)
    # Moderate weights: a float32 factorization of w spread over 8 decades would fail, and a
    # failed factorization (info != 0) may take a different (faster) path than a good one.
    w = interior_weights(batch).clamp(1e-2, 1e2)
    H = reduced_matrix(batch.expanded("Q"), batch.expanded("G"), w, 1e-6)
    L, info = benchmark(synchronized(lambda: torch.linalg.cholesky_ex(H), device))
    assert bool((info == 0).all()), "the reduced matrix must factor"
    rel = (L @ L.transpose(1, 2) - H).abs().amax() / H.abs().amax()
    assert float(rel) < (1e-12 if dtype == torch.float64 else 1e-5)
    benchmark.extra_info.update(n=N, batch_size=batch_size, dtype=str(dtype), device=device)


# ----------------------------------------------------------------------------- end to end


@pytest.mark.benchmark(group="solve: optnet_random n=m=50")
@ON_DEVICES
@IN_DTYPES
@AT_BATCH_SIZES
def test_solve_optnet_random(benchmark: Any, batch_size: int, dtype: torch.dtype, device: str) -> None:
    batch = problem_batch(batch_size, dtype, device)
    settings = SolverSettings()
    sol = benchmark(synchronized(lambda: solve(batch, settings), device))
    assert sol.status_counts() == {Status.SOLVED.label: batch_size}
    # The solver's own check is relative to the data; this one is the suite's absolute check at
    # a level every dtype reaches on these well-scaled problems.
    res = batch.residuals(sol.z, sol.lam, sol.nu)
    tol = 1e-6 if dtype == torch.float64 else 1e-2
    assert all(float(r.max()) < tol for r in res.values()), {k: float(v.max()) for k, v in res.items()}
    benchmark.extra_info.update(
        n=N,
        m=M,
        batch_size=batch_size,
        dtype=str(dtype),
        device=device,
        iterations_mean=float(sol.iterations.double().mean()),
        kkt_form=str(sol.info.get("kkt_form", "")),
        threads=torch.get_num_threads(),
    )
