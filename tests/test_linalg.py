"""The solver's Cholesky kernels: the per-matrix LAPACK loop used on CPU agrees with torch's, and
the shifted factorization with the factorization of the shifted matrix."""

from __future__ import annotations

import pytest
import torch

from qpbench.solver.linalg import cholesky, cholesky_shifted, cholesky_solve


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


def _spd(batch: int, n: int, dtype: torch.dtype, seed: int) -> torch.Tensor:
    X = torch.randn(batch, n, n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return (X @ X.mT + torch.eye(n, dtype=torch.float64)).to(dtype)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_shifted_factorization_is_that_of_the_shifted_matrix_bit_for_bit(dtype: torch.dtype) -> None:
    K = _spd(6, 30, dtype, 3)
    shift = torch.rand(6, 30, generator=torch.Generator().manual_seed(4), dtype=torch.float64).to(dtype)
    shift[2, 5] = -1e6  # that matrix is indefinite: flagged, the others unaffected
    kept = K.clone()
    shifted = K.clone()
    shifted.diagonal(dim1=-2, dim2=-1).add_(shift)
    L_ref, ok_ref = cholesky(shifted.clone())
    out = torch.full_like(K, float("nan"))
    L, ok = cholesky_shifted(K, shift, out)
    assert torch.equal(K, kept)  # K is read, never written
    assert ok.tolist() == ok_ref.tolist() == [True, True, False, True, True, True]
    assert L.data_ptr() == out.data_ptr()  # factored in the caller's buffer
    good = ok_ref
    assert torch.equal(L[good].tril(), L_ref[good].tril())  # the same numbers as copy, shift, factor
    L_fresh, ok_fresh = cholesky_shifted(K, shift, None)  # without a buffer: torch's ops, same result
    assert torch.equal(ok_fresh, ok) and torch.equal(L_fresh[good].tril(), L[good].tril())
