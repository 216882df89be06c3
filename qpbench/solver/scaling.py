"""Ruiz equilibration of a batch of QPs, per problem, and the rows without bound.

The scaled problem uses z = D z_hat, and rows scaled by E (inequalities) and F (equalities), with
the cost multiplied by c:

    Q_hat = c D Q D,  p_hat = c D p,  G_hat = E G D,  h_hat = E h,  A_hat = F A D,  b_hat = F b.

Then lam = E lam_hat / c, nu = F nu_hat / c, and residuals map back element-wise, so the
solver can test convergence on the original data without forming it again.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
from torch import Tensor

from qpbench.problem import QPBatch, absent_rows
from qpbench.solver import memory
from qpbench.solver.chunks import cache_pieces, in_pieces


@dataclass
class Scaling:
    """The factors of the scaling: z = D z_hat, lam = E lam_hat / c, nu = F nu_hat / c."""

    D: Tensor  # (B, n) column scaling
    E: Tensor  # (B, m) inequality row scaling
    F: Tensor  # (B, k) equality row scaling
    c: Tensor  # (B,) cost scaling


@dataclass
class ScaledProblem:
    """The scaled data. The matrices are stored once, as ``QCt = [Q, G', A']`` (B, n, n+m+k): the
    layout in which the iteration multiplies them (x'[Q, G', A'] gives Q x, G x, A x in one pass),
    with Q, G, A and C = [G; A] views into it. Separate copies would be one more pass over the data
    when the solver starts and at every compaction of the working set, and fresh memory, which the
    operating system hands out page by page (measured at B = 128, n = m = 100: about 40,000 page
    faults, a fifth of a solve's time)."""

    QCt: Tensor  # (B, n, n+m+k)
    p: Tensor  # (B, n)
    h: Tensor  # (B, m)
    b: Tensor  # (B, k)
    D: Tensor  # (B, n) column scaling
    E: Tensor  # (B, m) inequality row scaling
    F: Tensor  # (B, k) equality row scaling
    c: Tensor  # (B,) cost scaling

    @property
    def batch_size(self) -> int:
        return self.QCt.shape[0]

    @property
    def n(self) -> int:
        return self.p.shape[-1]

    @property
    def Q(self) -> Tensor:
        """(B, n, n), a view (Q is symmetric: its rows are its columns)."""
        return self.QCt[..., : self.n]

    @property
    def G(self) -> Tensor:
        """(B, m, n), a transposed view."""
        return self.QCt[..., self.n : self.n + self.h.shape[-1]].mT

    @property
    def A(self) -> Tensor:
        """(B, k, n), a transposed view."""
        return self.QCt[..., self.n + self.h.shape[-1] :].mT

    @property
    def C(self) -> Tensor:
        """(B, m+k, n) = [G; A], a transposed view."""
        return self.QCt[..., self.n :].mT

    @property
    def scaling(self) -> Scaling:
        return Scaling(self.D, self.E, self.F, self.c)

    def select(self, idx: Tensor) -> ScaledProblem:
        return ScaledProblem(*(memory.rows_of(getattr(self, f), idx) for f in self.__dataclass_fields__))


def _col_max(M: Tensor) -> Tensor:
    """Largest entry of each column of a nonnegative (B, r, n) -> (B, n); zeros when r == 0."""
    if M.shape[-2] == 0:
        return M.new_zeros(M.shape[0], M.shape[-1])
    return M.amax(dim=-2)


def _row_max(M: Tensor) -> Tensor:
    """Largest entry of each row of a nonnegative (B, r, n) -> (B, r); zeros when n == 0."""
    if M.shape[-2] == 0 or M.shape[-1] == 0:
        return M.new_zeros(M.shape[0], M.shape[-2])
    return M.amax(dim=-1)


_RUIZ_TOL = 0.05  # scaling factors this close to 1 change nothing that matters


def _near_one(factors: Tensor) -> Tensor:
    """(B,) every factor of the problem within _RUIZ_TOL of 1 (true for an empty block)."""
    if factors.shape[-1] == 0:
        return torch.ones(factors.shape[0], dtype=torch.bool, device=factors.device)
    return ((factors - 1).abs() <= _RUIZ_TOL).all(-1)


def _safe_inv_sqrt(x: Tensor) -> Tensor:
    # Empty rows/columns (norm 0) keep scale 1; extreme norms are clipped so scaling stays sane.
    return torch.where(x > 0, x.clamp(1e-4, 1e4).rsqrt(), torch.ones_like(x))


def neutralize_absent_rows(G: Tensor, h: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Rows without bound (h = +inf) become 0'z <= 1: always slack, multiplier 0, so the batch
    keeps one shape. Returns (G, h, absent); copies only when there is such a row."""
    absent = absent_rows(h)
    # (A compiled solve always copies: asking would end its graph.)
    if not torch.compiler.is_compiling() and not bool(absent.any()):
        return G, h, absent
    return G.masked_fill(absent.unsqueeze(-1), 0.0), h.masked_fill(absent, 1.0), absent


def equilibrate(batch: QPBatch, iterations: int, scale_cost: bool = False) -> tuple[ScaledProblem, Tensor]:
    """Ruiz scaling of the KKT matrix [[Q, G', A'], [G, 0, 0], [A, 0, 0]], balanced so that the Q
    block is not left far below the constraints (``_q_block_balance``), optionally followed by
    cost scaling; returns the scaled problem and the (B, m) mask of rows without bound.

    The norms are computed on float32 copies of |Q|, |G|, |A| that are rescaled in place each
    pass; the data itself is scaled once at the end. Scaling factors are heuristics that need no
    float64 precision, and this moves a quarter of the bytes of rescaling the float64 data every
    pass (measured 3.2 s of a 13 s solve at B = 64, n = m = 500 before the change). The passes
    run over cache-sized pieces of the batch (``cache_pieces``): each problem's factors depend on
    its own data only.
    """
    Q, p = batch.expanded("Q"), batch.expanded("p")
    G, h, absent = neutralize_absent_rows(batch.expanded("G"), batch.expanded("h"))
    A, b = batch.expanded("A"), batch.expanded("b")
    B, n = p.shape
    m, k = G.shape[1], A.shape[1]
    if iterations:
        work = torch.float32 if p.dtype == torch.float64 else p.dtype
        per_problem = n * (n + m + k) * (torch.finfo(work).bits // 8)
        factors = functools.partial(_ruiz_factors, iterations=iterations, scale_cost=scale_cost, work=work)
        D, E, F, c = in_pieces(factors, cache_pieces(B, per_problem, p.device), Q, G, A, p)
    else:
        D, E, F, c = p.new_ones(B, n), p.new_ones(B, m), p.new_ones(B, k), p.new_ones(B)
    # The scaled blocks are written straight into the one buffer (see ScaledProblem).
    QCt = memory.empty((B, n, n + m + k), p)
    cD = c.unsqueeze(-1) * D
    QCt[..., :n].copy_(Q).mul_(cD.unsqueeze(-1)).mul_(D.unsqueeze(-2))
    QCt[..., n : n + m].copy_(G.mT).mul_(E.unsqueeze(-2)).mul_(D.unsqueeze(-1))
    QCt[..., n + m :].copy_(A.mT).mul_(F.unsqueeze(-2)).mul_(D.unsqueeze(-1))
    scaled = ScaledProblem(QCt, p=p * cD, h=h * E, b=b * F, D=D, E=E, F=F, c=c)
    return scaled, absent


# The most the Q block is scaled up by ``_q_block_balance``: t**2 (see there).
_MAX_BALANCE = 100.0


def _q_block_balance(aQ: Tensor) -> Tensor:
    """(B,) t >= 1 for D t, E / t, F / t: the scaled Q's largest entry |Q_hat| brought up to 1.

    Ruiz's fixed points form a family: D t, E / t, F / t leave G_hat and A_hat as they are and
    the KKT matrix's row and column norms at most 1 while |Q_hat| <= 1, but scale Q_hat by t**2.
    Where the constraint rows' scales differ widely, the passes end with a Q_hat orders of
    magnitude below 1 (rows spanning 1e-4 to 1e4: largest entries 6e-4 to 5e-3, smallest
    eigenvalues about 1e-6), below float32's proximal floor, so that the prox terms outweigh Q.
    The member with the largest Q block that stays equilibrated is taken instead. The
    central path is the same for every t (z / t, s / t, lam t, the same s'lam); what moves is
    the weight of the proximal terms against Q and the constraints, so t is capped
    (``_MAX_BALANCE``). Problems without a Q block (LPs) keep t = 1."""
    qmax = aQ.amax(dim=(-2, -1))
    t = (1.0 / qmax.clamp_min(torch.finfo(qmax.dtype).tiny)).sqrt().clamp(1.0, _MAX_BALANCE)
    return torch.where(qmax > 0, t, torch.ones_like(t))


def _ruiz_factors(
    Q: Tensor, G: Tensor, A: Tensor, p: Tensor, iterations: int, scale_cost: bool, work: torch.dtype
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The factors D, E, F, c of ``equilibrate`` for a batch (or a piece of one), with the
    norms computed in the dtype ``work``."""
    B, n = p.shape
    dt = p.dtype
    D = p.new_ones(B, n)
    E = p.new_ones(B, G.shape[1])
    F = p.new_ones(B, A.shape[1])
    c = p.new_ones(B)
    aQ, aG, aA = (M.to(work, copy=True).abs_() for M in (Q, G, A))  # copies: never touch the input
    converged = torch.zeros(B, dtype=torch.bool, device=p.device)
    for _ in range(iterations):
        # Column norms of the KKT matrix for the z block, row norms for the constraint blocks.
        col = torch.maximum(_col_max(aQ), torch.maximum(_col_max(aG), _col_max(aA)))
        d = _safe_inv_sqrt(col)
        e = _safe_inv_sqrt(_row_max(aG))
        f = _safe_inv_sqrt(_row_max(aA))
        # A problem whose norms are all within _RUIZ_TOL of 1 keeps its scaling from here on
        # (factors of exactly 1), so its scaling does not depend on how long its batch-mates
        # need; the passes stop when every problem is there.
        converged |= _near_one(d) & _near_one(e) & _near_one(f)
        # A compiled solve runs every pass (same factors: converged problems get exactly 1).
        if not torch.compiler.is_compiling() and bool(converged.all()):
            break
        keep = converged.unsqueeze(-1)
        d, e, f = (torch.where(keep, 1.0, v) for v in (d, e, f))
        aQ.mul_(d.unsqueeze(-1)).mul_(d.unsqueeze(-2))
        aG.mul_(e.unsqueeze(-1)).mul_(d.unsqueeze(-2))
        aA.mul_(f.unsqueeze(-1)).mul_(d.unsqueeze(-2))
        D.mul_(d.to(dt))
        E.mul_(e.to(dt))
        F.mul_(f.to(dt))
    if n:
        t = _q_block_balance(aQ)
        if scale_cost:  # its norms are taken of the balanced Q
            aQ.mul_((t * t).view(B, 1, 1))
        t = t.to(dt).unsqueeze(-1)
        D.mul_(t)
        E.div_(t)
        F.div_(t)
    if scale_cost:
        # Bring the larger of the mean |Q| column norm and |p| to about one.
        q_norm = aQ.amax(dim=-2).mean(dim=-1).to(dt) if n else p.new_zeros(B)
        p_norm = (p * D).abs().amax(dim=-1) if n else p.new_zeros(B)
        gamma = torch.maximum(q_norm, p_norm)
        c = torch.where(gamma > 0, 1.0 / gamma.clamp(1e-4, 1e4), torch.ones_like(gamma))
    return D, E, F, c
