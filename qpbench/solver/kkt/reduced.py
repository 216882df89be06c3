"""The reduced (n x n) form: every multiplier eliminated.

    dlam = W (G dz - g),   W = 1 / (s/lam + delta)
    dnu  = (A dz - e) / delta
    (Q + rho I + G'WG + A'A/delta) dz = a + G'W g + A'e/delta

The matrix is positive definite for any rho > 0, whatever Q (singular, zero) and A (rank
deficient) are, and its weights are bounded by 1/delta. Forming G'WG costs m n^2 flops per
iteration and the Cholesky factorization n^3/3; A'A is formed once per solve.
"""

from __future__ import annotations

import torch
from torch import Tensor

from qpbench.solver.kkt.base import Direction, KKTSystem, SharedRHS, bmtv, bmv
from qpbench.solver.linalg import cholesky, cholesky_solve
from qpbench.solver.result import WorkCounts
from qpbench.solver.scaling import ScaledProblem


class ReducedKKT(KKTSystem):
    name = "reduced"

    def __init__(self, prob: ScaledProblem, work: WorkCounts) -> None:
        super().__init__(prob, work)
        self.AtA = torch.matmul(prob.A.mT, prob.A) if self.k else None  # (B, n, n), once per solve
        self._L: Tensor | None = None
        self._W: Tensor | None = None
        self._inv_delta: Tensor | None = None

    def factor(self, w_inv: Tensor, rho: Tensor, delta: Tensor) -> Tensor:
        P = self.prob
        self.work.add(factorizations=self.batch_size)
        W = 1.0 / w_inv
        M = torch.matmul(P.G.mT * W.unsqueeze(-2), P.G) if self.m else torch.zeros_like(P.Q)
        M.add_(P.Q)
        inv_delta = 1.0 / delta
        if self.AtA is not None:
            M.add_(self.AtA * inv_delta.view(-1, 1, 1))
        M.diagonal(dim1=-2, dim2=-1).add_(rho.unsqueeze(-1))
        self._L, ok = cholesky(M.contiguous(), overwrite=True)
        self._W, self._inv_delta = W, inv_delta
        return ok

    def shared_rhs(self, a: Tensor, e: Tensor) -> SharedRHS:
        if not self.k:
            return SharedRHS(a=a, e=e, extra=a)
        assert self._inv_delta is not None, "factor before solving"
        return SharedRHS(a=a, e=e, extra=a + bmtv(self.prob.A, e) * self._inv_delta.unsqueeze(-1))

    def solve(self, rhs: SharedRHS, g: Tensor, want_z: bool = True) -> Direction:
        assert self._L is not None and self._W is not None and self._inv_delta is not None, "factor before solving"
        P = self.prob
        self.work.add(solves=self.batch_size)
        Wg = self._W * g
        r = rhs.extra + bmtv(P.G, Wg) if self.m else rhs.extra
        dz = cholesky_solve(self._L, r)
        Gdz = bmv(P.G, dz)
        dlam = self._W * Gdz - Wg
        dnu = (bmv(P.A, dz) - rhs.e) * self._inv_delta.unsqueeze(-1) if self.k else rhs.e
        return Direction(dz=dz, Gdz=Gdz, dlam=dlam, dnu=dnu)

    def select(self, idx: Tensor) -> ReducedKKT:
        new = object.__new__(ReducedKKT)
        self._select_common(new, idx)
        new.AtA = None if self.AtA is None else self.AtA[idx]
        new._L = new._W = new._inv_delta = None
        return new
