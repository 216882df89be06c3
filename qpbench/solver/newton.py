"""The steps of one interior-point iteration: initial point, Mehrotra predictor-corrector on
the regularized system, and the step lengths (separate for the primal and the dual variables).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from qpbench.solver.kkt import DualKKT, Factorization, KKTSystem, SharedRHS
from qpbench.solver.measures import Residuals
from qpbench.solver.regularization import Prox, regularized_rhs
from qpbench.solver.state import Iterate

_MU_FLOOR = 1e-10  # the initial complementarity is at least this (an exactly feasible start)


def central_pair(c: Tensor, mu: Tensor) -> tuple[Tensor, Tensor]:
    """(s, lam) > 0 with s lam = mu and lam - s = c, element-wise (mu broadcast per problem).

    lam = (c + sqrt(c^2 + 4 mu)) / 2, written without cancellation for c << 0 (rows far from
    their bound: tiny lam, large s)."""
    root = torch.sqrt(c * c + 4 * mu)
    lam = torch.where(c >= 0, (c + root) / 2, 2 * mu / (root - c))
    return lam - c, lam


def initial_point(kkt: KKTSystem, prox: Prox) -> tuple[Iterate, Tensor]:
    """The regularized least-squares point, moved onto the central path; and the (B,) flags of
    the problems whose system factored (the others start from z = 0 and must retry).

    With s = lam = 1 the Newton system from zero reads (Q + rho I) z + G'lam + A'nu = -p,
    Az - delta nu = b, Gz - (1 + delta) lam = h: lam is the (scaled) violation of each row and
    s = -lam its slack. Every pair (s_i, lam_i) is then replaced by the point of the central
    path s lam = mu that keeps lam_i - s_i, with mu the mean complementarity after shifting all
    s and lam to be nonnegative (Mehrotra's heuristic, as PIQP applies it)."""
    P = kkt.prob
    B, m = P.h.shape
    fac = kkt.factor(P.h.new_ones(B, m) + prox.delta.unsqueeze(-1), prox.rho, prox.delta)
    d = kkt.solve(fac, kkt.start_rhs(fac), P.h)
    assert d.dz is not None
    good = fac.ok & torch.isfinite(d.dz).all(-1) & torch.isfinite(d.dlam).all(-1) & torch.isfinite(d.dnu).all(-1)
    keep = good.unsqueeze(-1)
    z = torch.where(keep, d.dz, 0.0)
    nu = torch.where(keep, d.dnu, 0.0)
    if not m:
        return Iterate.pack(z, P.h, P.h, nu), good
    c = torch.where(keep, d.dlam, 0.0)
    shift_s = (c.amax(-1, keepdim=True)).clamp_min(0)  # s = -c >= 0 after adding this
    shift_l = (-c.amin(-1, keepdim=True)).clamp_min(0)
    mu = ((shift_s - c) * (c + shift_l)).mean(-1, keepdim=True).clamp_min(_MU_FLOOR)
    mu = torch.where(keep, mu, 1.0)
    s, lam = central_pair(c, mu)
    return Iterate.pack(z, s, lam, nu), good


def max_step(x: Tensor, dx: Tensor) -> Tensor:
    """(B,) largest alpha in [0, 1] with x + alpha dx >= 0 (x > 0): 1 / max(1, max_i -dx_i / x_i)."""
    if x.shape[-1] == 0:
        return x.new_ones(x.shape[0])
    return (-dx / x).amax(-1).clamp_min(1.0).reciprocal()


@dataclass
class Step:
    """A Newton step: the packed direction (dz, ds, dlam, dnu), the primal and dual step lengths,
    and the (B,) flags of the problems whose factorization succeeded."""

    d: Tensor
    alpha_primal: Tensor
    alpha_dual: Tensor
    ok: Tensor

    def scaled(self, n: int, m: int) -> Tensor:
        """The step actually taken: alpha_primal (dz, ds), alpha_dual (dlam, dnu); overwrites d."""
        self.d[:, : n + m].mul_(self.alpha_primal.unsqueeze(-1))
        self.d[:, n + m :].mul_(self.alpha_dual.unsqueeze(-1))
        return self.d


def _factor_and_rhs(
    kkt: KKTSystem, w_inv: Tensor, prox: Prox, it: Iterate, r: Residuals, r_d: Tensor, e: Tensor
) -> tuple[Factorization, SharedRHS]:
    """Factor the Newton system at the iterate and prepare the right-hand side its solves share."""
    if isinstance(kkt, DualKKT):  # rho = 0 there, so r_d is the unregularized residual
        # The product with K comes first: the factorization then copies K while it is in cache.
        rhs = kkt.newton_rhs(it.z, torch.cat([r.Gz, r.Az], dim=1), it.y, r_d, e)
        return kkt.factor(w_inv, prox.rho, prox.delta), rhs
    fac = kkt.factor(w_inv, prox.rho, prox.delta)
    return fac, kkt.shared_rhs(fac, -r_d, e)


def predictor_corrector(kkt: KKTSystem, it: Iterate, prox: Prox, r: Residuals, tau: float, mu: Tensor) -> Step:
    """Mehrotra's predictor-corrector step on the regularized system at the iterate (whose
    complementarity is ``mu``)."""
    m = it.m
    s, lam = it.s, it.lam
    r_d, r_in, r_eq = regularized_rhs(prox, it, r.r_d, r.r_in, r.r_eq)
    fac, rhs = _factor_and_rhs(kkt, s / lam + prox.delta.unsqueeze(-1), prox, it, r, r_d, -r_eq)
    if not m:
        d = kkt.solve(fac, rhs, r_in)
        assert d.dz is not None
        one = it.x.new_ones(it.x.shape[0])
        return Step(torch.cat([d.dz, d.dnu], dim=1), one, one, fac.ok)
    # Predictor (complementarity target 0): the linearized s o lam + lam o ds + s o dlam = 0
    # gives G dz - (s/lam + delta) dlam = -r_in + s.
    aff = kkt.solve(fac, rhs, s - r_in, want_z=False)
    ds_aff = -s - s * aff.dlam / lam
    a_p = tau * max_step(s, ds_aff)
    a_d = tau * max_step(lam, aff.dlam)
    mu_aff = ((s + a_p.unsqueeze(-1) * ds_aff) * (lam + a_d.unsqueeze(-1) * aff.dlam)).sum(-1) / m
    sigma = (mu_aff / mu.clamp_min(torch.finfo(mu.dtype).tiny)).clamp(0, 1) ** 3
    # Corrector: target sigma mu, with the predictor's second-order term ds_aff o dlam_aff.
    rc = s * lam + ds_aff * aff.dlam - (sigma * mu).unsqueeze(-1)
    d = kkt.solve(fac, rhs, rc / lam - r_in)
    assert d.dz is not None and d.Gdz is not None
    # From the linearized row G dz + ds - delta dlam = -r_in: the primal residual then shrinks
    # exactly by (1 - alpha) (up to the proximal term).
    ds = -r_in - d.Gdz + prox.delta.unsqueeze(-1) * d.dlam
    D = torch.cat([d.dz, ds, d.dlam, d.dnu], dim=1)
    return Step(D, tau * max_step(s, ds), tau * max_step(lam, d.dlam), fac.ok)
