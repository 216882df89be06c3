"""Batched Cholesky factorization and solves for the solver, fastest available per device.

On CPU, torch's batched Cholesky was measured slower than calling LAPACK's potrf once per matrix
through SciPy (one thread each, paired in one process: 1.68x the time at B = 128, n = 100, 1.20x at
B = 64, n = 500; but 0.81x at B = 16, n = 20, where the loop's per-call cost shows). So on CPU
the factor is computed in place by potrf, one matrix at a time, and the strictly upper triangle of
the returned ``L`` is left unspecified (it holds what was there before): every consumer uses ``L``
only through triangular solves, which read one triangle. On other devices torch's batched kernel is used.

SciPy's LAPACK runs on its own BLAS threads; ``benchmarks/solver_speed.py`` limits them together
with torch's when it measures a given thread count.
"""

from __future__ import annotations

import torch
from scipy.linalg import lapack
from torch import Tensor

_POTRF = {torch.float64: lapack.dpotrf, torch.float32: lapack.spotrf}


def _lapack_loop(M: Tensor) -> Tensor:
    """Factor each contiguous (B, n, n) matrix in place by LAPACK; returns the (B,) info codes.
    The row-major matrix seen in Fortran order is its transpose, which is the same matrix: potrf
    writes L' into the row-major upper triangle, i.e. L into M.mT."""
    potrf = _POTRF[M.dtype]
    info = [potrf(a.T, lower=True, overwrite_a=True, clean=False)[1] for a in M.numpy()]
    return torch.tensor(info, dtype=torch.int32)


def cholesky(M: Tensor, overwrite: bool = False, lapack_loop: bool = True) -> tuple[Tensor, Tensor]:
    """Lower Cholesky factor of each (B, n, n) matrix, never raising; ``ok`` (B,) marks the
    matrices that factored. Only the lower triangle of the factor is meaningful. With
    ``overwrite`` a contiguous CPU ``M`` (a temporary of the caller) is factored in place;
    ``lapack_loop=False`` always uses torch's kernel, and so does a compiled solve: there it is
    one library call inside the graph, where the loop would be an operator called from Python
    (measured at B = 1, n = 20: 30 to 45 against 5 to 10 us; compiled solves are for small batches,
    where the loop gains nothing)."""
    if (
        not lapack_loop
        or torch.compiler.is_compiling()
        or M.device.type != "cpu"
        or M.dtype not in _POTRF
        or M.requires_grad
        or M.shape[-1] == 0
    ):
        L, info = torch.linalg.cholesky_ex(M)
        return L, info == 0
    work = M if overwrite and M.is_contiguous() else M.detach().clone(memory_format=torch.contiguous_format)
    info = _lapack_loop(work)
    finite = torch.isfinite(work.diagonal(dim1=-2, dim2=-1)).all(-1)
    return work.mT, (info == 0) & finite


def cholesky_solve(L: Tensor, r: Tensor) -> Tensor:
    """Solve (L L') x = r for r of shape (B, n) or (B, n, c) by two triangular solves (measured
    3x faster than torch.cholesky_solve for batches of small matrices on CPU, which copies L)."""
    vector = r.dim() == L.dim() - 1
    rhs = r.unsqueeze(-1) if vector else r
    x = torch.linalg.solve_triangular(L, rhs, upper=False)
    x = torch.linalg.solve_triangular(L.mT, x, upper=True)
    return x.squeeze(-1) if vector else x
