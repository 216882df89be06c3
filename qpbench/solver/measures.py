"""Residuals of an iterate (scaled units) and their measures in the original units.

The convergence test is made on the original data, as every user measures it (docs/solver.md):

    primal = max(|[Gz - h]_+|, |Az - b|),  dual = |Qz + p + G'lam + A'nu|,
    gap = |z'Qz + p'z + h'lam + b'nu|     (infinity norms)

Through the scaling (z = D z_hat, lam = E lam_hat / c, nu = F nu_hat / c) each is an
element-wise rescaling of the scaled residual, so nothing is formed again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor

from qpbench.solver.kkt import KKTSystem
from qpbench.solver.state import Iterate


class ProblemVectors(Protocol):
    """What the measures read of a problem: its vectors and scaling factors, no matrix (a
    ``ScaledProblem`` is one)."""

    p: Tensor
    h: Tensor
    b: Tensor
    D: Tensor
    E: Tensor
    F: Tensor
    c: Tensor


def inf_norm(x: Tensor) -> Tensor:
    """Infinity norm over the last dim; 0 for an empty last dim."""
    if x.shape[-1] == 0:
        return x.new_zeros(x.shape[:-1])
    # The same value as torch.linalg.vector_norm(x, inf), whose CPU kernel took 6x as long for
    # the iteration's (B, n) vectors (46 against 7 us at (128, 100)): a dozen calls an iteration.
    return x.abs().amax(dim=-1)


@dataclass
class Residuals:
    """Residuals of the iterate in scaled units, and the products they came from."""

    r_d: Tensor  # Qz + p + G'lam + A'nu
    r_in: Tensor  # Gz + s - h
    r_eq: Tensor  # Az - b
    Qz: Tensor
    Gz: Tensor
    Az: Tensor
    Cty: Tensor  # G'lam + A'nu


@dataclass
class DirectionProducts:
    """Products of the certificate candidates (B, r, N), one per row, with the data."""

    Qd: Tensor | None  # (B, r, n) Q dz, G dz, A dz: for the unboundedness test (None when not needed)
    Gd: Tensor | None
    Ad: Tensor | None
    Ctd: Tensor  # (B, r, n) G'(dlam)_+ + A'dnu: for the infeasibility test


def residuals(
    kkt: KKTSystem, it: Iterate, directions: Tensor | None, unbounded_test: bool
) -> tuple[Residuals, DirectionProducts | None]:
    """Residuals of the iterate; with certificate candidates ``directions`` (B, r, N, packed as
    the iterate), also their products, stacked with the iterate's as further rows: the same
    pass over the data."""
    P = kkt.prob
    n, m = kkt.n, kkt.m
    if directions is None:
        Qz, Gz, Az = (t[:, 0] for t in kkt.forward_products(it.z.unsqueeze(-2)))
        Cty = kkt.adjoint_products(it.y.unsqueeze(-2))[:, 0]
        products = None
    else:
        d_lam = directions[..., n + m : n + 2 * m].clamp_min(0)
        dy = torch.cat([d_lam, directions[..., n + 2 * m :]], dim=-1)
        Ct = kkt.adjoint_products(torch.cat([it.y.unsqueeze(-2), dy], dim=-2))
        Cty = Ct[:, 0]
        rows = torch.cat([it.z.unsqueeze(-2), directions[..., :n]], dim=-2) if unbounded_test else it.z.unsqueeze(-2)
        Q2, G2, A2 = kkt.forward_products(rows)
        Qz, Gz, Az = Q2[:, 0], G2[:, 0], A2[:, 0]
        if unbounded_test:
            products = DirectionProducts(Qd=Q2[:, 1:], Gd=G2[:, 1:], Ad=A2[:, 1:], Ctd=Ct[:, 1:])
        else:
            products = DirectionProducts(Qd=None, Gd=None, Ad=None, Ctd=Ct[:, 1:])
    r = Residuals(r_d=Qz + P.p + Cty, r_in=Gz + it.s - P.h if m else Gz, r_eq=Az - P.b, Qz=Qz, Gz=Gz, Az=Az, Cty=Cty)
    return r, products


@dataclass
class Measures:
    """(B,) residuals in the original units and each divided by its tolerance."""

    primal: Tensor
    dual: Tensor
    gap: Tensor
    primal_ratio: Tensor
    dual_ratio: Tensor
    gap_ratio: Tensor
    merit: Tensor  # the largest ratio: <= 1 means converged; NaN counts as infinitely bad

    @staticmethod
    def of(primal: Tensor, dual: Tensor, gap: Tensor, tolerances: tuple[Tensor | float, ...]) -> Measures:
        ratios = (primal / tolerances[0], dual / tolerances[1], gap / tolerances[2])
        worst = torch.maximum(ratios[0], torch.maximum(ratios[1], ratios[2]))
        return Measures(primal, dual, gap, *ratios, merit=torch.nan_to_num(worst, nan=float("inf")))

    @property
    def converged(self) -> Tensor:
        return self.merit <= 1


def measure(P: ProblemVectors, it: Iterate, r: Residuals, eps_abs: float, eps_rel: float) -> Measures:
    """The three residuals in the original units, and their ratios to eps_abs + eps_rel * scale
    (the scales cost twelve reductions, skipped when eps_rel = 0)."""
    c = P.c.unsqueeze(-1)
    cD = c * P.D
    viol = ((r.Gz - P.h) / P.E).clamp_min(0)
    primal = torch.maximum(inf_norm(viol), inf_norm(r.r_eq / P.F))
    dual = inf_norm(r.r_d / cD)
    gap = _gap(P, it, r).abs() / P.c
    return tolerance_ratios(primal, dual, gap, P, it, r, eps_abs, eps_rel)


def _gap(P: ProblemVectors, it: Iterate, r: Residuals) -> Tensor:
    """(B,) z'Qz + p'z + h'lam + b'nu (scaled units), as z'(r_d - C'y) + [h; b]'y."""
    hb = torch.cat([P.h, P.b], dim=-1) if P.b.shape[-1] else P.h
    return (it.z * (r.r_d - r.Cty)).sum(-1) + (it.y * hb).sum(-1)


def _gap_terms(P: ProblemVectors, it: Iterate, r: Residuals) -> Tensor:
    """(4, B) z'Qz, p'z, h'lam, b'nu (scaled units)."""
    return torch.stack([(it.z * r.Qz).sum(-1), (P.p * it.z).sum(-1), (P.h * it.lam).sum(-1), (P.b * it.nu).sum(-1)])


def tolerance_ratios(
    primal: Tensor,
    dual: Tensor,
    gap: Tensor,
    P: ProblemVectors,
    it: Iterate,
    r: Residuals,
    eps_abs: float,
    eps_rel: float,
) -> Measures:
    """Measures with each residual divided by eps_abs + eps_rel * its scale (see SolverSettings)."""
    if not eps_rel:
        tol = max(eps_abs, 1e-300)
        return Measures.of(primal, dual, gap, (tol, tol, tol))
    c = P.c.unsqueeze(-1)
    cD = c * P.D
    scales = (
        torch.stack([inf_norm(r.Gz / P.E), inf_norm(P.h / P.E), inf_norm(r.Az / P.F), inf_norm(P.b / P.F)]).amax(0),
        torch.stack([inf_norm(r.Qz / cD), inf_norm(P.p / cD), inf_norm(r.Cty / cD)]).amax(0),
        _gap_terms(P, it, r).abs().amax(0) / P.c,
    )
    tol = tuple((eps_abs + eps_rel * s).clamp_min(1e-300) for s in scales)
    return Measures.of(primal, dual, gap, tol)
