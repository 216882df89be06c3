"""The solver's Cholesky kernels: the per-matrix LAPACK loop used on CPU agrees with torch's."""

from __future__ import annotations

import pytest
import torch

from qpbench.solver.linalg import cholesky, cholesky_solve


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("n", [1, 7, 60])
def test_lapack_loop_matches_torch_and_solves(dtype: torch.dtype, n: int) -> None:
    gen = torch.Generator().manual_seed(n)
    X = torch.randn(5, n, n, generator=gen, dtype=torch.float64)
    M = (X @ X.mT + n * torch.eye(n, dtype=torch.float64)).to(dtype)
    L, ok = cholesky(M)
    reference = torch.linalg.cholesky(M)
    tol = 1e-10 if dtype == torch.float64 else 1e-3
    assert bool(ok.all())
    assert torch.allclose(L.tril(), reference, atol=tol * n)  # only the lower triangle is specified
    r = torch.randn(5, n, generator=gen, dtype=torch.float64).to(dtype)
    R = torch.randn(5, n, 3, generator=gen, dtype=torch.float64).to(dtype)
    assert torch.allclose(M @ cholesky_solve(L, r).unsqueeze(-1), r.unsqueeze(-1), atol=tol * 10 * n)
    assert torch.allclose(M @ cholesky_solve(L, R), R, atol=tol * 10 * n)


def test_failures_are_flagged_per_matrix_and_input_kept() -> None:
    M = torch.eye(4, dtype=torch.float64).repeat(3, 1, 1)
    M[1, 2, 2] = -1.0  # indefinite
    M[2, 0, 0] = float("nan")
    before = M.clone()
    _, ok = cholesky(M)
    assert ok.tolist() == [True, False, False]
    assert torch.equal(M[:2], before[:2]) and bool(torch.isnan(M[2, 0, 0]))  # not overwritten
