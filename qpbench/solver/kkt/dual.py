"""The dual ((m+k) x (m+k)) form, for problems whose Q is safely positive definite.

dz is eliminated instead of the multipliers: dz = Q^-1 (a - C' dy) with C = [G; A],
dy = [dlam; dnu], and

    (C Q^-1 C' + diag(s/lam + delta, delta)) dy = C Q^-1 a - [g; e].

Q is factored once per solve, Y' = C Q^-1 and K = C Q^-1 C' are formed once (two triangular
solves from the right and one product), so an iteration factors only the (m+k)-sized matrix
((m+k)^3/3 flops). No primal proximal term is needed (rho = 0: Q itself is strongly convex), so
Q^-1 a has the closed form used by ``newton_rhs``; the dual proximal parameter delta keeps
the matrix positive definite when C has dependent rows.
"""

from __future__ import annotations

import functools

import torch
from torch import Tensor

from qpbench.solver import memory
from qpbench.solver.chunks import cache_pieces, in_pieces
from qpbench.solver.kkt.base import Direction, Factorization, KKTSystem, SharedRHS, bmtv
from qpbench.solver.linalg import cholesky, cholesky_solve
from qpbench.solver.result import WorkCounts
from qpbench.solver.scaling import ScaledProblem

# The dual form applies Q^-1 (through Y = Q^-1 C'): it loses about cond(Q) * eps of accuracy, so
# it is used only below these condition numbers.
_COND_LIMIT = {torch.float64: 1e7, torch.float32: 1e3}


def power_start(batch_size: int, n: int, like: Tensor) -> Tensor:
    """(B, n) the start vector of ``condition_estimate``, of ``like``'s dtype and device:
    random, the same for every call."""
    g = torch.Generator(device="cpu").manual_seed(0)
    return torch.rand(batch_size, n, generator=g, dtype=torch.float64).to(like) + 0.5


def condition_estimate(Q: Tensor, L: Tensor, v: Tensor, steps: int = 8) -> Tensor:
    """(B,) estimate of cond(Q) by power iteration on Q and inverse iteration with its factor L,
    from the vector v.

    Both iterations approach their extreme eigenvalue from below, so this slightly underestimates;
    a handful of steps lands within a small factor, which is all the form choice needs. Each
    step passes over Q and L: the batch is taken in cache-sized pieces (``cache_pieces``).
    """
    B, n = v.shape
    pieces = cache_pieces(B, 2 * n * n * Q.element_size(), Q.device)
    return in_pieces(functools.partial(_condition_estimate, steps=steps), pieces, Q, L, v)


def _condition_estimate(Q: Tensor, L: Tensor, v: Tensor, steps: int) -> Tensor:
    u = v.clone()
    big = small = Q.new_ones(Q.shape[0])
    for _ in range(steps):
        v = bmtv(Q, v)
        big = v.norm(dim=-1)
        v = v / big.clamp_min(1e-300).unsqueeze(-1)
        u = cholesky_solve(L, u)
        small = u.norm(dim=-1)
        u = u / small.clamp_min(1e-300).unsqueeze(-1)
    return big * small


def dual_form_suitable(Q: Tensor, L: Tensor, definite: Tensor, v: Tensor) -> Tensor:
    """(B,) bool: Q is positive definite (``definite``: its Cholesky factor ``L`` exists) with a
    modest condition number, estimated from the start vector v (see ``power_start``)."""
    return definite & (condition_estimate(Q, L, v) < _COND_LIMIT[Q.dtype])


def _dual_products(Lq: Tensor, C: Tensor) -> tuple[Tensor, Tensor]:
    """Y' = C Q^-1 (B, m+k, n) and K = C Q^-1 C' (B, m+k, m+k) from Q's factor Lq: two triangular
    solves from the right (row layout, no transposed copies) and one product, over cache-sized
    pieces of the batch (``cache_pieces``: each piece's matrices are read three times)."""
    B, r, n = C.shape
    pieces = cache_pieces(B, (n * n + 3 * r * n + r * r) * C.element_size(), C.device)
    if len(pieces) == 1:
        X = torch.linalg.solve_triangular(Lq.mT, C, upper=True, left=False)  # C L^-T
        return torch.linalg.solve_triangular(Lq, X, upper=False, left=False), torch.matmul(X, X.mT)
    Yt, K = memory.empty((B, r, n), C), memory.empty((B, r, r), C)
    for s in pieces:
        X = torch.linalg.solve_triangular(Lq[s].mT, C[s], upper=True, left=False)
        torch.linalg.solve_triangular(Lq[s], X, upper=False, left=False, out=Yt[s])
        torch.matmul(X, X.mT, out=K[s])
    return Yt, K


class DualKKT(KKTSystem):
    name = "dual"

    def __init__(self, prob: ScaledProblem, work: WorkCounts, q_factor: Tensor) -> None:
        """``q_factor``: the Cholesky factor of Q."""
        super().__init__(prob, work)
        # Q's factor is the rows ``_lq_rows`` of ``_lq_source`` (all of them where None).
        self._lq_source, self._lq_rows = q_factor, None
        # Kept as two contiguous matrices: K is copied into the factorization's buffer every
        # iteration, which a view into a wider matrix slows down (measured 2.5 against 1.9 ms
        # at B = 128, n = m = 100).
        self.Yt, self.K = _dual_products(self.Lq, self.C)
        self._qp: Tensor | None = None  # [Q^-1 p; C Q^-1 p], for newton_rhs
        self._work: Tensor | None = None  # the factorization's buffer, reused every iteration

    @property
    def Lq(self) -> Tensor:
        """(B, n, n) the Cholesky factor of Q. The iteration does not read it (its right-hand
        sides come from Y' and K, ``newton_rhs``), so a compacted system gathers its rows only
        when asked: a copy of them at every compaction was a fifth of what compacting moves
        (and fresh memory)."""
        if self._lq_rows is not None:
            self._lq_source, self._lq_rows = memory.rows_of(self._lq_source, self._lq_rows), None
        return self._lq_source

    def factor(self, w_inv: Tensor, rho: Tensor, delta: Tensor) -> Factorization:
        self.work.add(factorizations=self.batch_size)
        # One buffer, overwritten by each factorization: a fresh 10 MB copy per iteration was
        # measured several times slower than copying into a reused one.
        if self._work is None:
            self._work = memory.empty_like(self.K)
        M = self._work.copy_(self.K)
        diag = M.diagonal(dim1=-2, dim2=-1)
        diag[:, : self.m].add_(w_inv)
        diag[:, self.m :].add_(delta.unsqueeze(-1))
        return Factorization(*cholesky(M, overwrite=True))

    def shared_rhs(self, fac: Factorization, a: Tensor, e: Tensor) -> SharedRHS:
        v = cholesky_solve(self.Lq, a)
        Cv = bmtv(self.C.mT, v)
        return SharedRHS(a=a, e=e, extra=torch.cat([v, Cv], dim=1))

    def newton_rhs(self, z: Tensor, Cz: Tensor, y: Tensor, r_d: Tensor, e: Tensor) -> SharedRHS:
        """``shared_rhs(fac, -r_d, e)`` at the iterate (z, y = [lam; nu]) with C z = Cz, where
        r_d = Q z + p + C'y: then Q^-1 (-r_d) = -z - Q^-1 p - Y y and C Q^-1 (-r_d) =
        -C z - C Q^-1 p - K y: two products with Y' and K instead of two triangular solves and a product."""
        extra = -(torch.cat([z, Cz], dim=1) + self._q_inv_p() + self._times_yt_and_k(y))
        return SharedRHS(a=-r_d, e=e, extra=extra)

    def start_rhs(self, fac: Factorization) -> SharedRHS:
        """``shared_rhs(fac, -p, b)`` from the [Q^-1 p; C Q^-1 p] that ``newton_rhs`` keeps (the
        same numbers: a triangular solve commutes exactly with the sign)."""
        return SharedRHS(a=-self.prob.p, e=self.prob.b, extra=-self._q_inv_p())

    def _q_inv_p(self) -> Tensor:
        if self._qp is None:
            qp = cholesky_solve(self.Lq, self.prob.p)
            self._qp = torch.cat([qp, bmtv(self.C.mT, qp)], dim=1)
        return self._qp

    def solve(self, fac: Factorization, rhs: SharedRHS, g: Tensor, want_z: bool = True) -> Direction:
        assert rhs.extra is not None, "a right-hand side of this form"
        self.work.add(solves=self.batch_size)
        n, m = self.n, self.m
        dy = cholesky_solve(fac.L, rhs.extra[:, n:] - torch.cat([g, rhs.e], dim=1))
        if not want_z:
            return Direction(dz=None, Gdz=None, dlam=dy[:, :m], dnu=dy[:, m:])
        zC = rhs.extra - self._times_yt_and_k(dy)  # [dz; C dz]
        return Direction(dz=zC[:, :n], Gdz=zC[:, n : n + m], dlam=dy[:, :m], dnu=dy[:, m:])

    def _times_yt_and_k(self, y: Tensor) -> Tensor:
        """(B, n+m+k) [Y y; K y] for y (B, m+k)."""
        return torch.cat([bmtv(self.Yt, y), bmtv(self.K, y)], dim=-1)

    def select(self, idx: Tensor) -> DualKKT:
        new = object.__new__(DualKKT)
        self._select_common(new, idx)
        new._lq_source = self._lq_source
        new._lq_rows = idx if self._lq_rows is None else self._lq_rows[idx]
        new.Yt, new.K = memory.rows_of(self.Yt, idx), memory.rows_of(self.K, idx)
        new._qp = None if self._qp is None else self._qp[idx]
        # The working set only shrinks and is used by one system at a time: the factorization's
        # buffer is a prefix of the old one (fresh memory costs page faults, 80 MB at B = 1024).
        # A factorization of the old system made before is overwritten: the backward pass
        # factors again.
        new._work = None if self._work is None else self._work[: len(idx)]
        return new
