"""The interface every KKT form implements, and the products both forms share.

Each Newton step of the proximal interior-point method, the initial point and the backward pass
solve, for (dz, dlam, dnu), the regularized system with the slacks eliminated

    (Q + rho I) dz + G' dlam + A' dnu = a
    G dz - (s/lam + delta) dlam       = g
    A dz - delta dnu                  = e

with per-problem proximal parameters rho, delta > 0. The inverse weights s/lam + delta are
bounded below by delta, so the weights stay below 1/delta. A form factors this system one way
(``factor``, which returns the factorization as a value) and solves it for right-hand sides
(``solve``); right-hand sides are split into the part shared by the predictor and the corrector
(``shared_rhs``, depending on a and e) and g. The system object itself does not change during
the iteration, so an iteration is a function of its state tensors (what a compiled loop needs).
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from qpbench.solver.result import WorkCounts
from qpbench.solver.scaling import ScaledProblem


def bmv(M: Tensor, v: Tensor) -> Tensor:
    """Batched matrix x vector: (B, r, c) @ (B, c) -> (B, r)."""
    return torch.matmul(M, v.unsqueeze(-1)).squeeze(-1)


def bmtv(M: Tensor, v: Tensor) -> Tensor:
    """Batched M' v as a row vector times M: (B, r) @ (B, r, c) -> (B, c)."""
    return torch.matmul(v.unsqueeze(-2), M).squeeze(-2)


@dataclass
class SharedRHS:
    """The parts of a right-hand side that depend only on a and e (the form's own precomputation)."""

    a: Tensor  # (B, n)
    e: Tensor  # (B, k)
    extra: Tensor | None = None  # form-specific: the dual form keeps [Q^-1 a; C Q^-1 a]


@dataclass
class Factorization:
    """One factorization of the system (``KKTSystem.factor``): what its solves need."""

    L: Tensor  # the Cholesky factor of the form's matrix
    ok: Tensor  # (B,) bool: factored; the other problems' solves are garbage, masked by the caller


@dataclass
class Direction:
    """A solution of the system; ``Gdz`` is G dz where the form computed it anyway (else None)."""

    dz: Tensor | None  # None when the caller said it needs only the multipliers
    Gdz: Tensor | None
    dlam: Tensor
    dnu: Tensor


class KKTSystem(abc.ABC):
    """A factorization of the system above for a working set of problems.

    Also holds the products with the problem data that the iteration needs, in one layout for
    both forms: ``QCt = [Q, G', A']`` (B, n, n+m+k), so that Q x, G x and A x of several row
    vectors x come from one pass over the data, and C = [G; A] (B, m+k, n) for C' y, a view of
    the same memory (``ScaledProblem``).
    """

    name: ClassVar[str]

    def __init__(self, prob: ScaledProblem, work: WorkCounts) -> None:
        self.prob = prob
        self.work = work
        self.n, self.m, self.k = prob.n, prob.h.shape[-1], prob.b.shape[-1]

    # Views of the problem's one copy of the matrices, derived where used: a compiled loop may
    # not capture two tensors that share memory.
    @property
    def C(self) -> Tensor:
        return self.prob.C

    @property
    def QCt(self) -> Tensor:
        return self.prob.QCt

    @property
    def batch_size(self) -> int:
        return self.prob.batch_size

    # ------------------------------------------------------------------ products
    def forward_products(self, rows: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Q x, G x, A x for row vectors x (B, r, n): one pass over [Q, G', A']."""
        self.work.add(products=self.batch_size)
        out = torch.matmul(rows, self.QCt)
        n, m = self.n, self.m
        return out[..., :n], out[..., n : n + m], out[..., n + m :]

    def adjoint_products(self, rows: Tensor) -> Tensor:
        """C' y for row vectors y = [lam, nu] (B, r, m+k): one pass over C."""
        self.work.add(products=self.batch_size)
        return torch.matmul(rows, self.C)

    # ------------------------------------------------------------------ the form
    @abc.abstractmethod
    def factor(self, w_inv: Tensor, rho: Tensor, delta: Tensor) -> Factorization:
        """Factor at inverse weights w_inv = s/lam + delta (B, m) and rho, delta (B,)."""

    @abc.abstractmethod
    def shared_rhs(self, fac: Factorization, a: Tensor, e: Tensor) -> SharedRHS:
        """Precompute what the solves for (a, e, g) with different g have in common."""

    def start_rhs(self, fac: Factorization) -> SharedRHS:
        """``shared_rhs(fac, -p, b)``: the initial point's right-hand side."""
        return self.shared_rhs(fac, -self.prob.p, self.prob.b)

    @abc.abstractmethod
    def solve(self, fac: Factorization, rhs: SharedRHS, g: Tensor, want_z: bool = True) -> Direction:
        """Solve with the factorization ``fac``; without ``want_z`` a form may skip dz."""

    @abc.abstractmethod
    def select(self, idx: Tensor) -> KKTSystem:
        """The same system for the problems ``idx`` only (compaction of the working set)."""

    def refine(
        self, fac: Factorization, d: Direction, a: Tensor, e: Tensor, g: Tensor, w_inv: Tensor, rho: Tensor,
        delta: Tensor, steps: int, mask: Tensor | None = None,
    ) -> Direction:
        """``steps`` passes of iterative refinement of ``d`` against the system with the given
        w_inv, rho and delta, which may differ from those factored (the factorization is then a
        preconditioner). With ``mask`` only those problems take the corrections; the others
        keep ``d`` bit for bit, so no problem's result depends on which others are refined."""
        assert d.dz is not None
        dz, dlam, dnu = d.dz, d.dlam, d.dnu
        keep = None if mask is None else mask.unsqueeze(-1)
        for _ in range(steps):
            Qd, Gd, Ad = (t[:, 0] for t in self.forward_products(dz.unsqueeze(-2)))
            Cty = self.adjoint_products(torch.cat([dlam, dnu], dim=1).unsqueeze(-2))[:, 0]
            ra = a - Qd - rho.unsqueeze(-1) * dz - Cty
            rg = g - Gd + w_inv * dlam
            re = e - Ad + delta.unsqueeze(-1) * dnu
            c = self.solve(fac, self.shared_rhs(fac, ra, re), rg)
            assert c.dz is not None
            if keep is None:
                dz, dlam, dnu = dz + c.dz, dlam + c.dlam, dnu + c.dnu
            else:
                dz = torch.where(keep, dz + c.dz, dz)
                dlam = torch.where(keep, dlam + c.dlam, dlam)
                dnu = torch.where(keep, dnu + c.dnu, dnu)
        Gdz = torch.matmul(dz.unsqueeze(-2), self.QCt[:, :, self.n : self.n + self.m]).squeeze(-2) if steps else d.Gdz
        return Direction(dz=dz, Gdz=Gdz, dlam=dlam, dnu=dnu)

    def solve_refined(
        self, fac: Factorization, a: Tensor, e: Tensor, g: Tensor, w_inv: Tensor, rho: Tensor, delta: Tensor, steps: int
    ) -> Direction:
        """Solve with ``fac``, then refine (see ``refine``) for every problem."""
        return self.refine(fac, self.solve(fac, self.shared_rhs(fac, a, e), g), a, e, g, w_inv, rho, delta, steps)

    def _select_common(self, new: KKTSystem, idx: Tensor) -> None:
        new.prob, new.work = self.prob.select(idx), self.work
        new.n, new.m, new.k = self.n, self.m, self.k
