"""The reduced (n x n) form: every multiplier eliminated.

    dlam = W (G dz - g),   W = 1 / (s/lam + delta)
    dnu  = (A dz - e) / delta
    (Q + rho I + G'WG + A'A/delta) dz = a + G'W g + A'e/delta

The matrix is positive definite for any rho > 0, whatever Q (singular, zero) and A (rank
deficient) are, and its weights are bounded by 1/delta. Forming G'WG costs m n^2 flops per
iteration and the Cholesky factorization n^3/3; A'A is formed once per solve.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from qpbench.solver import memory
from qpbench.solver.kkt.base import Direction, Factorization, KKTSystem, SharedRHS, bmtv, bmv
from qpbench.solver.linalg import cholesky, cholesky_solve
from qpbench.solver.result import WorkCounts
from qpbench.solver.scaling import ScaledProblem


@dataclass
class ReducedFactorization(Factorization):
    """The reduced form's factor, with the weights its solves apply to recover the multipliers."""

    W: Tensor  # (B, m) 1 / (s/lam + delta)
    inv_delta: Tensor  # (B,)


def _reduced(fac: Factorization) -> ReducedFactorization:
    assert isinstance(fac, ReducedFactorization), "a factorization of the reduced form"
    return fac


class ReducedKKT(KKTSystem):
    name = "reduced"

    def __init__(self, prob: ScaledProblem, work: WorkCounts) -> None:
        super().__init__(prob, work)
        self.AtA = torch.matmul(prob.A.mT, prob.A) if self.k else None  # (B, n, n), once per solve
        # The matrix's and G'W's buffers, overwritten by each factorization: fresh ones every
        # iteration were most of a solve's page faults (portfolio, B = 256, n = 200: 850,000).
        self._work: Tensor | None = None  # (B, n, n)
        self._gw: Tensor | None = None  # (B, n, m)

    def factor(self, w_inv: Tensor, rho: Tensor, delta: Tensor) -> ReducedFactorization:
        P = self.prob
        self.work.add(factorizations=self.batch_size)
        W = 1.0 / w_inv
        work, gw = self._buffers()
        if self.m:
            M = torch.matmul(torch.mul(P.G.mT, W.unsqueeze(-2), out=gw), P.G, out=work)
        else:
            M = torch.zeros_like(P.Q) if work is None else work.zero_()
        M.add_(P.Q)
        inv_delta = 1.0 / delta
        if self.AtA is not None:
            M.add_(self.AtA * inv_delta.view(-1, 1, 1))
        M.diagonal(dim1=-2, dim2=-1).add_(rho.unsqueeze(-1))
        L, ok = cholesky(M.contiguous(), overwrite=True)
        return ReducedFactorization(L, ok, W, inv_delta)

    def _buffers(self) -> tuple[Tensor | None, Tensor | None]:
        """The factorization's buffers (allocated at the first call); None in a compiled solve,
        whose graph allocates its own."""
        if torch.compiler.is_compiling():
            return None, None
        if self._work is None:
            B, n, m = self.batch_size, self.n, self.m
            self._work, self._gw = memory.empty((B, n, n), self.prob.p), memory.empty((B, n, m), self.prob.p)
        return self._work, self._gw

    def shared_rhs(self, fac: Factorization, a: Tensor, e: Tensor) -> SharedRHS:
        if not self.k:
            return SharedRHS(a=a, e=e, extra=a)
        return SharedRHS(a=a, e=e, extra=a + bmtv(self.prob.A, e) * _reduced(fac).inv_delta.unsqueeze(-1))

    def solve(self, fac: Factorization, rhs: SharedRHS, g: Tensor, want_z: bool = True) -> Direction:
        f = _reduced(fac)
        P = self.prob
        self.work.add(solves=self.batch_size)
        Wg = f.W * g
        r = rhs.extra + bmtv(P.G, Wg) if self.m else rhs.extra
        dz = cholesky_solve(f.L, r)
        Gdz = bmv(P.G, dz)
        dlam = f.W * Gdz - Wg
        dnu = (bmv(P.A, dz) - rhs.e) * f.inv_delta.unsqueeze(-1) if self.k else rhs.e
        return Direction(dz=dz, Gdz=Gdz, dlam=dlam, dnu=dnu)

    def select(self, idx: Tensor) -> ReducedKKT:
        new = object.__new__(ReducedKKT)
        self._select_common(new, idx)
        new.AtA = None if self.AtA is None else memory.rows_of(self.AtA, idx)
        # As in the dual form: the working set only shrinks, so its buffers are prefixes of the
        # old ones (a factorization of the old system is overwritten; the backward pass factors again).
        b = len(idx)
        new._work = None if self._work is None else self._work[:b]
        new._gw = None if self._gw is None else self._gw[:b]
        return new
