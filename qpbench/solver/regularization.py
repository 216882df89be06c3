"""The proximal parameters and prox centres of each problem, and how they move.

Each iteration is a Newton step on the proximal-point subproblem

    min_z max_{lam>=0, nu}  L(z, lam, nu) + rho/2 |z - zeta|^2 - delta/2 |lam - lam_bar|^2
                                          - delta/2 |nu - nu_bar|^2

whose solution equals the QP's once the centres (zeta, lam_bar, nu_bar) stop moving, so the
regularization does not change the answer, only the path to it. Per problem (in the manner of
PIQP, Schwan et al. 2023): a centre moves to the iterate when its residual made progress (the
dual residual for zeta, the primal residual for lam_bar, nu_bar), and rho, delta then shrink at
the rate mu shrinks, down to a floor; where progress stalls the centre stays, which is what
stabilizes degenerate and infeasible problems. A failed factorization raises both parameters.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import Tensor

from qpbench.solver.measures import Measures, inf_norm
from qpbench.solver.scaling import ScaledProblem
from qpbench.solver.settings import SolverSettings
from qpbench.solver.state import Iterate

# Progress that moves a prox centre: the residual fell below this share of the previous one.
_PROGRESS = 0.95
# Without progress rho and delta still shrink, at this share of mu's rate (early iterations, or
# while the prox term is small).
_SLOW_SHRINK = 0.666
# Prox terms below this (original units) do not indicate infeasibility.
_PROX_TERM_SMALL = 0.9
# Iterations without a centre update before the floor drops to the fine-tune floor.
_STALLS_BEFORE_FINETUNE = 7
EARLY_ITERATIONS = 5  # the first iterations shrink the parameters even without progress
_FAILURE_FACTOR = 100.0


@dataclass
class Prox:
    """Per-problem proximal state (every tensor field has the working set as first dim)."""

    rho: Tensor  # (B,) primal proximal parameter (0 in the dual form, whose Q needs none)
    delta: Tensor  # (B,) dual proximal parameter
    floor: Tensor  # (B,) the current lower limit of rho and delta
    centre: Tensor  # (B, n+m+k) [zeta, lam_bar, nu_bar]
    primal_stalls: Tensor  # (B,) int: iterations without moving zeta
    dual_stalls: Tensor  # (B,) int: iterations without moving lam_bar, nu_bar
    prev_primal: Tensor  # (B,) residuals at the previous iterate (original units)
    prev_dual: Tensor
    n: int
    m: int
    primal_prox: bool  # False in the dual form: rho stays 0
    finetune_floor: float  # the floor once progress stalled at the regular one
    floor_cap: float  # failures raise the floor up to this (eps_abs)

    @staticmethod
    def initial(it: Iterate, settings: SolverSettings, primal_prox: bool) -> Prox:
        B = it.x.shape[0]
        like = it.x.new_ones(B)
        rho = like * float(settings.rho_init) if primal_prox else like * 0.0
        zeros = torch.zeros(B, dtype=torch.int32, device=it.x.device)
        inf = like * float("inf")
        return Prox(
            rho=rho,
            delta=like * float(settings.delta_init),
            floor=like * float(settings.reg_floor),
            centre=torch.cat([it.z, it.y], dim=1),
            primal_stalls=zeros,
            dual_stalls=zeros.clone(),
            prev_primal=inf,
            prev_dual=inf.clone(),
            n=it.n,
            m=it.m,
            primal_prox=primal_prox,
            finetune_floor=float(settings.reg_finetune_floor),
            floor_cap=float(settings.eps_abs),
        )

    @property
    def zeta(self) -> Tensor:
        return self.centre[:, : self.n]

    @property
    def lam_bar(self) -> Tensor:
        return self.centre[:, self.n : self.n + self.m]

    @property
    def nu_bar(self) -> Tensor:
        return self.centre[:, self.n + self.m :]

    def displacement(self, it: Iterate) -> Tensor:
        """The iterate minus the prox centre, packed as the iterate (zero slack part): the sum of
        the steps since the centres last moved, which points along a certificate when the
        problem is infeasible or unbounded."""
        s = it.s.new_zeros(it.s.shape)
        return torch.cat([it.z - self.zeta, s, it.y - self.centre[:, self.n :]], dim=1)

    def primal_term(self, P: ScaledProblem, it: Iterate) -> Tensor:
        """(B,) delta |(lam, nu) - (lam_bar, nu_bar)| in original units: how far the dual prox
        term pulls the constraints (large and persistent for an infeasible problem)."""
        c = P.c.unsqueeze(-1)
        dl = inf_norm(P.E * (it.lam - self.lam_bar) / c)
        dn = inf_norm(P.F * (it.nu - self.nu_bar) / c)
        return self.delta * torch.maximum(dl, dn)

    def dual_term(self, P: ScaledProblem, it: Iterate) -> Tensor:
        """(B,) rho |z - zeta| in original units (large and persistent for an unbounded problem)."""
        return self.rho * inf_norm(P.D * (it.z - self.zeta))


def regularized_rhs(prox: Prox, it: Iterate, r_d: Tensor, r_in: Tensor, r_eq: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """The residuals of the proximal subproblem: r_d + rho (z - zeta), r_in - delta (lam - lam_bar),
    r_eq - delta (nu - nu_bar) (scaled units)."""
    delta = prox.delta.unsqueeze(-1)
    r_d_prox = r_d + prox.rho.unsqueeze(-1) * (it.z - prox.zeta) if prox.primal_prox else r_d
    return r_d_prox, r_in - delta * (it.lam - prox.lam_bar), r_eq - delta * (it.nu - prox.nu_bar)


def update(
    prox: Prox, P: ScaledProblem, it: Iterate, meas: Measures, mu_rate: Tensor, moved: Tensor, iteration: int
) -> Prox:
    """Move the centres and shrink rho, delta after a step (``moved``: the problems whose step
    was taken); see the module docstring."""
    early = iteration < EARLY_ITERATIONS
    finetuned = prox.floor <= prox.finetune_floor
    dual_term, primal_term = prox.dual_term(P, it), prox.primal_term(P, it)
    dual_progress = (meas.dual < _PROGRESS * prox.prev_dual) | (meas.dual_ratio <= 1)
    dual_progress |= finetuned & (prox.rho <= prox.floor) & (dual_term < _PROX_TERM_SMALL)
    primal_progress = (meas.primal < _PROGRESS * prox.prev_primal) | (meas.primal_ratio <= 1)
    primal_progress |= finetuned & (prox.delta <= prox.floor) & (primal_term < _PROX_TERM_SMALL)
    dual_progress &= moved
    primal_progress &= moved

    fast, slow = 1 - mu_rate, 1 - _SLOW_SHRINK * mu_rate
    # Without progress the parameters still shrink slowly while the prox term is small, and
    # also once progress has stalled for long: on an infeasible (unbounded) problem the
    # multipliers (iterates) then run off along the certificate, which sharpens it.
    long_primal = prox.primal_stalls > _STALLS_BEFORE_FINETUNE
    long_dual = prox.dual_stalls > _STALLS_BEFORE_FINETUNE
    shrink_rho = torch.where(
        dual_progress, fast, torch.where(early | (dual_term < _PROX_TERM_SMALL) | long_primal, slow, 1.0)
    )
    shrink_delta = torch.where(
        primal_progress, fast, torch.where(early | (primal_term < _PROX_TERM_SMALL) | long_dual, slow, 1.0)
    )
    rho = torch.maximum(prox.floor, torch.where(moved, shrink_rho, 1.0) * prox.rho) if prox.primal_prox else prox.rho
    delta = torch.maximum(prox.floor, torch.where(moved, shrink_delta, 1.0) * prox.delta)

    primal_stalls = torch.where(moved & ~dual_progress, prox.primal_stalls + 1, prox.primal_stalls)
    dual_stalls = torch.where(moved & ~primal_progress, prox.dual_stalls + 1, prox.dual_stalls)
    # Progress stalled with a parameter at the floor: the floor may be what keeps the iterates
    # from the solution (a local limit of the regularized path), so lower it, once.
    stuck = ((primal_stalls > _STALLS_BEFORE_FINETUNE) & (rho <= prox.floor) & prox.primal_prox) | (
        (dual_stalls > _STALLS_BEFORE_FINETUNE) & (delta <= prox.floor)
    )
    finetune = stuck & ~finetuned & (dual_term < _PROX_TERM_SMALL) & (primal_term < _PROX_TERM_SMALL)
    return Prox(
        rho=rho,
        delta=delta,
        floor=torch.where(finetune, prox.finetune_floor, prox.floor),
        centre=torch.cat(
            [
                torch.where(dual_progress.unsqueeze(-1), it.z, prox.zeta),
                torch.where(primal_progress.unsqueeze(-1), it.y, prox.centre[:, prox.n :]),
            ],
            dim=1,
        ),
        primal_stalls=primal_stalls.masked_fill(finetune, 0),
        dual_stalls=dual_stalls.masked_fill(finetune, 0),
        prev_primal=torch.where(moved, meas.primal, prox.prev_primal),
        prev_dual=torch.where(moved, meas.dual, prox.prev_dual),
        n=prox.n,
        m=prox.m,
        primal_prox=prox.primal_prox,
        finetune_floor=prox.finetune_floor,
        floor_cap=prox.floor_cap,
    )


def after_failure(prox: Prox, failed: Tensor) -> Prox:
    """Raise rho and delta (and the floor, up to eps_abs) of the problems whose factorization or
    step failed, so that their next factorization is better conditioned."""
    up = torch.where(failed, _FAILURE_FACTOR, 1.0)
    floor = torch.where(failed, (10 * prox.floor).clamp(max=max(prox.floor_cap, prox.finetune_floor)), prox.floor)
    rho = torch.maximum(prox.rho * up, floor) if prox.primal_prox else prox.rho
    return replace(prox, rho=rho, delta=torch.maximum(prox.delta * up, floor), floor=floor)
