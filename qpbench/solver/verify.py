"""Convergence confirmed on the original data.

The iteration measures its residuals through the scaling (``measures``), which is exact in exact
arithmetic but not in floating point: at tight tolerances (1e-9 and below) the gap, a sum of
terms that cancel, can differ by more than the tolerance between the scaled computation and the
one a user makes on the original data. A problem is declared solved only when the second one,
in float64, agrees.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import torch
from torch import Tensor

from qpbench.problem import QPBatch, absent_rows
from qpbench.solver.chunks import cache_pieces, in_pieces
from qpbench.solver.measures import Residuals, tolerance_ratios
from qpbench.solver.state import Iterate


@dataclass
class _Unscaled:
    """The original problem's vectors, with the factors of no scaling (``ProblemVectors``)."""

    p: Tensor
    h: Tensor
    b: Tensor
    D: Tensor = field(init=False)
    E: Tensor = field(init=False)
    F: Tensor = field(init=False)
    c: Tensor = field(init=False)

    def __post_init__(self) -> None:
        self.D, self.E, self.F = torch.ones_like(self.p), torch.ones_like(self.h), torch.ones_like(self.b)
        self.c = self.p.new_ones(self.p.shape[0])


# Gathering the rows' data copies it. On the CPU the rows are checked in cache-sized pieces
# (``cache_pieces``): each piece's copy is small, so it reuses memory the allocator already holds
# and is still in cache for the three products; one copy of all the rows was fresh memory, taken
# page by page from the operating system (measured at B = 1024, n = m = 100: 264 rows in 125 ms,
# 10,000 page faults, against 3 ms for the same gather into memory already in use). Elsewhere
# the rows are checked at once, and where they are a large share of a float64 batch the iterates
# are scattered into the batch's rows instead and the residuals taken on all of it, read in
# place. Each problem's residuals are the same computation either way; only the batched
# product's last bits can depend on how many matrices it is given.
_WHOLE_BATCH_SHARE = 0.5
_NAMES = ("Q", "p", "G", "h", "A", "b")


def confirmed(
    batch: QPBatch, rows: Tensor, z: Tensor, lam: Tensor, nu: Tensor, eps_abs: float, eps_rel: float
) -> Tensor:
    """(r,) whether (z, lam, nu) in original units meet the tolerance on the original data of
    the problems ``rows`` of ``batch``, with the residuals of ``QPBatch.residuals`` in float64
    (the definition every measurement in qpbench uses)."""
    per_problem = batch.n * (batch.n + batch.m + batch.k) * 8  # a gathered problem's matrices, float64
    pieces = cache_pieces(rows.numel(), per_problem, batch.device)
    if len(pieces) > 1:
        check = functools.partial(_rows_meet, batch, eps_abs=eps_abs, eps_rel=eps_rel)
        return in_pieces(check, pieces, rows, z, lam, nu)
    if batch.dtype == torch.float64 and rows.numel() >= _WHOLE_BATCH_SHARE * batch.batch_size:
        original = QPBatch(**{name: batch.expanded(name) for name in _NAMES}, check="none")
        z, lam, nu = (_into_rows(v, rows, batch.batch_size) for v in (z, lam, nu))
        return _meets(original, z, lam, nu, eps_abs, eps_rel)[rows]
    return _rows_meet(batch, rows, z, lam, nu, eps_abs=eps_abs, eps_rel=eps_rel)


def _rows_meet(
    batch: QPBatch, rows: Tensor, z: Tensor, lam: Tensor, nu: Tensor, eps_abs: float, eps_rel: float
) -> Tensor:
    """``confirmed`` on a float64 copy of the rows' data."""
    f64 = torch.float64
    original = QPBatch(**{name: batch.expanded(name)[rows].to(f64) for name in _NAMES}, check="none")
    return _meets(original, z.to(f64), lam.to(f64), nu.to(f64), eps_abs, eps_rel)


def _into_rows(v: Tensor, rows: Tensor, batch_size: int) -> Tensor:
    """(batch_size, d): v's rows at ``rows`` in float64, zeros elsewhere."""
    v = v.to(torch.float64)
    return v.new_zeros(batch_size, v.shape[-1]).index_copy_(0, rows, v)


def _meets(original: QPBatch, z: Tensor, lam: Tensor, nu: Tensor, eps_abs: float, eps_rel: float) -> Tensor:
    """(B,) the tolerance test on float64 data and iterates."""
    res, products = original.residuals_and_products(z, lam, nu)
    if not eps_rel:
        return (res["primal"] <= eps_abs) & (res["dual"] <= eps_abs) & (res["gap"] <= eps_abs)
    # The scales of a relative tolerance, from the residuals' own products, with rows without
    # bound left out (their products masked rather than the data copied with those rows zeroed).
    p, h, b = (original.expanded(name) for name in ("p", "h", "b"))
    absent = absent_rows(h)
    lam = lam.masked_fill(absent, 0.0)
    h = h.masked_fill(absent, 1.0)
    P = _Unscaled(p=p, h=h, b=b)
    Qz, Gz, Az = products.Qz, products.Gz.masked_fill(absent, 0.0), products.Az
    Cty = products.Gt_lam + products.At_nu
    r = Residuals(r_d=Qz + P.p + Cty, r_in=Gz - h, r_eq=Az - P.b, Qz=Qz, Gz=Gz, Az=Az, Cty=Cty)
    return tolerance_ratios(
        res["primal"], res["dual"], res["gap"], P, Iterate.pack(z, lam, lam, nu), r, eps_abs, eps_rel
    ).converged
