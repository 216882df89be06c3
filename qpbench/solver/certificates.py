"""Certificates of primal infeasibility and unboundedness, tested on the last step.

A primal infeasible problem's multipliers diverge along a Farkas direction, and an unbounded
problem's iterates along a direction of recession, so the last step points along the
certificate. The tests are made on that step in the original units and relative to the data's
own magnitudes, so they neither depend on eps_abs (they work at any accuracy) nor on the size
the multipliers have grown to:

* primal infeasible: y = ((dlam)_+, dnu) with  |G'y_lam + A'y_nu| <= eps |[G; A]| |y|  and
  h'y_lam + b'y_nu <= -eps max(|h|, |b|) |y|  (no z can satisfy Gz <= h, Az = b);
* unbounded: x = dz with  |Qx| <= eps |Q| |x|,  |(Gx)_+| <= eps |G| |x|,  |Ax| <= eps |A| |x|
  and  p'x <= -eps |p| |x|  (the objective decreases without bound along x).

All norms are infinity norms (of a matrix: its largest entry).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from qpbench.problem import QPBatch
from qpbench.solver.measures import DirectionProducts, inf_norm
from qpbench.solver.scaling import ScaledProblem
from qpbench.solver.state import Iterate


def _max_abs(t: Tensor) -> Tensor:
    """(B,) largest |entry| of each problem's (B, ...) tensor; 0 when empty."""
    if t.numel() == 0:
        return t.new_zeros(t.shape[0])
    # From the extremes, without a copy of |t| (the data's size, at B = 1024). Two reductions,
    # not one aminmax: torch's CPU aminmax over a dimension is not vectorized (measured 2.1 ms
    # against 0.75 ms for amax and amin of a (128, 10000) float64 tensor).
    flat = t.flatten(1)
    return torch.maximum(flat.amax(dim=-1), -flat.amin(dim=-1))


@dataclass
class DataNorms:
    """(B,) largest entries of the original data (rows without bound left out of h)."""

    Q: Tensor
    p: Tensor
    C: Tensor  # of G and A together
    G: Tensor
    A: Tensor
    hb: Tensor  # of h and b together

    @staticmethod
    def of(batch: QPBatch, absent: Tensor) -> DataNorms:
        G, A = batch.expanded("G"), batch.expanded("A")
        h = batch.expanded("h").masked_fill(absent, 0.0)
        g_norm, a_norm = _max_abs(G), _max_abs(A)
        return DataNorms(
            Q=_max_abs(batch.expanded("Q")),
            p=_max_abs(batch.expanded("p")),
            C=torch.maximum(g_norm, a_norm),
            G=g_norm,
            A=a_norm,
            hb=torch.maximum(_max_abs(h), _max_abs(batch.expanded("b"))),
        )


def primal_infeasible(
    P: ScaledProblem, norms: DataNorms, it: Iterate, d: Iterate, products: DirectionProducts, eps: float
) -> Tensor:
    """(B,) some candidate's multipliers form a Farkas certificate (original units; ``d`` packs the
    candidates as (B, r, N) rows, see the module docstring)."""
    c = P.c.unsqueeze(-1)
    E, F, D = P.E.unsqueeze(-2), P.F.unsqueeze(-2), P.D.unsqueeze(-2)
    dlam = d.lam.clamp_min(0)
    y_norm = torch.maximum(inf_norm(E * dlam), inf_norm(F * d.nu)) / c
    residual = inf_norm(products.Ctd / D) / c
    value = ((P.h.unsqueeze(-2) * dlam).sum(-1) + (P.b.unsqueeze(-2) * d.nu).sum(-1)) / c
    # For any z, h'y + b'nu = (h - Gz)'y + (b - Az)'nu + z'(G'y + A'nu): a value that the
    # residual could explain at the current iterate's scale, |z|_1 |G'y + A'nu|, proves nothing.
    z_scale = (P.D * it.z).abs().sum(-1, keepdim=True)
    ok = (
        (y_norm > 0)
        & (residual <= eps * norms.C.unsqueeze(-1) * y_norm)
        & (value <= -eps * norms.hb.unsqueeze(-1) * y_norm)
        & (value + z_scale * residual < 0)
    )
    return ok.any(-1)


def unbounded(
    P: ScaledProblem, norms: DataNorms, it: Iterate, d: Iterate, products: DirectionProducts, eps: float
) -> Tensor:
    """(B,) some candidate's z part is a direction of recession with decreasing cost (original units)."""
    assert products.Qd is not None and products.Gd is not None and products.Ad is not None
    c = P.c.unsqueeze(-1)
    E, F, D = P.E.unsqueeze(-2), P.F.unsqueeze(-2), P.D.unsqueeze(-2)
    x_norm = inf_norm(D * d.z)
    bound = eps * x_norm
    Qx = inf_norm(products.Qd / D) / c
    Gx = inf_norm((products.Gd / E).clamp_min(0))
    Ax = inf_norm(products.Ad / F)
    px = (P.p.unsqueeze(-2) * d.z).sum(-1) / c
    # With a dual feasible (z, lam, nu), p'x = -z'Qx - lam'Gx - nu'Ax: a decrease that the
    # constraint residuals could explain at the current multipliers' scale proves nothing. (z
    # itself runs off along x on an unbounded problem, so it is no estimate of a dual point's z.)
    c1 = P.c.unsqueeze(-1)
    lam_scale = (P.E * it.lam / c1).abs().sum(-1, keepdim=True)
    nu_scale = (P.F * it.nu / c1).abs().sum(-1, keepdim=True)
    ok = (
        (x_norm > 0)
        & (Qx <= bound * norms.Q.unsqueeze(-1))
        & (Gx <= bound * norms.G.unsqueeze(-1))
        & (Ax <= bound * norms.A.unsqueeze(-1))
        & (px <= -bound * norms.p.unsqueeze(-1))
        & (px + lam_scale * Gx + nu_scale * Ax < 0)
    )
    return ok.any(-1)
