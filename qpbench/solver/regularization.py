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

from dataclasses import dataclass

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


# The two parameters follow one rule, so they are kept side by side, one column each:
# column RHO is the primal parameter rho with its centre zeta, answering to the dual residual;
# column DELTA is the dual parameter delta with its centres lam_bar, nu_bar, answering to the
# primal residual.
RHO, DELTA = 0, 1


@dataclass
class Prox:
    """Per-problem proximal state (every tensor field has the working set as first dim)."""

    params: Tensor  # (B, 2) [rho, delta]; rho is 0 in the dual form, whose Q needs none
    floor: Tensor  # (B,) the current lower limit of rho and delta
    centre: Tensor  # (B, n+m+k) [zeta, lam_bar, nu_bar]
    stalls: Tensor  # (B, 2) int: iterations without moving [zeta, (lam_bar, nu_bar)]
    previous: Tensor  # (B, 2) [dual, primal] residuals at the previous iterate (original units)
    n: int
    m: int
    primal_prox: bool  # False in the dual form: rho stays 0
    finetune_floor: float  # the floor once progress stalled at the regular one
    floor_cap: float  # failures raise the floor up to this (eps_abs)

    @staticmethod
    def initial(it: Iterate, settings: SolverSettings, primal_prox: bool) -> Prox:
        B = it.x.shape[0]
        start = torch.tensor([float(settings.rho_init) if primal_prox else 0.0, float(settings.delta_init)])
        return Prox(
            params=start.to(it.x).expand(B, 2).clone(),
            floor=it.x.new_full((B,), float(settings.reg_floor)),
            centre=torch.cat([it.z, it.y], dim=1),
            stalls=torch.zeros(B, 2, dtype=torch.int32, device=it.x.device),
            previous=it.x.new_full((B, 2), float("inf")),
            n=it.n,
            m=it.m,
            primal_prox=primal_prox,
            finetune_floor=float(settings.reg_finetune_floor),
            floor_cap=float(settings.eps_abs),
        )

    @property
    def rho(self) -> Tensor:
        return self.params[:, RHO]

    @property
    def delta(self) -> Tensor:
        return self.params[:, DELTA]

    @property
    def primal_stalls(self) -> Tensor:
        """(B,) iterations without moving zeta (the dual residual stopped improving)."""
        return self.stalls[:, RHO]

    @property
    def dual_stalls(self) -> Tensor:
        """(B,) iterations without moving lam_bar, nu_bar (the primal residual stopped improving)."""
        return self.stalls[:, DELTA]

    @property
    def zeta(self) -> Tensor:
        return self.centre[:, : self.n]

    @property
    def lam_bar(self) -> Tensor:
        return self.centre[:, self.n : self.n + self.m]

    @property
    def nu_bar(self) -> Tensor:
        return self.centre[:, self.n + self.m :]

    def moved(self, params: Tensor, floor: Tensor, centre: Tensor, stalls: Tensor, previous: Tensor) -> Prox:
        """This state with new tensors (spelled out rather than ``dataclasses.replace``, whose
        walk over the fields a compiled iteration would have to guard on every call)."""
        return Prox(params, floor, centre, stalls, previous, self.n, self.m, self.primal_prox, self.finetune_floor,
                    self.floor_cap)

    def displacement(self, it: Iterate) -> Tensor:
        """The iterate minus the prox centre, packed as the iterate (zero slack part): the sum of
        the steps since the centres last moved, which points along a certificate when the
        problem is infeasible or unbounded."""
        s = it.s.new_zeros(it.s.shape)
        return torch.cat([it.z - self.zeta, s, it.y - self.centre[:, self.n :]], dim=1)

    def terms(self, P: ScaledProblem, it: Iterate) -> Tensor:
        """(B, 2) how far each prox term pulls, in original units: rho |z - zeta| (large and
        persistent for an unbounded problem) and delta |(lam, nu) - (lam_bar, nu_bar)| (for an
        infeasible one)."""
        c = P.c.unsqueeze(-1)
        dz = inf_norm(P.D * (it.z - self.zeta))
        dy = torch.maximum(inf_norm(P.E * (it.lam - self.lam_bar) / c), inf_norm(P.F * (it.nu - self.nu_bar) / c))
        return self.params * torch.stack([dz, dy], dim=-1)


def regularized_rhs(prox: Prox, it: Iterate, r_d: Tensor, r_in: Tensor, r_eq: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """The residuals of the proximal subproblem: r_d + rho (z - zeta), r_in - delta (lam - lam_bar),
    r_eq - delta (nu - nu_bar) (scaled units)."""
    delta = prox.delta.unsqueeze(-1)
    r_d_prox = r_d + prox.rho.unsqueeze(-1) * (it.z - prox.zeta) if prox.primal_prox else r_d
    return r_d_prox, r_in - delta * (it.lam - prox.lam_bar), r_eq - delta * (it.nu - prox.nu_bar)


def update(
    prox: Prox, P: ScaledProblem, it: Iterate, meas: Measures, mu_rate: Tensor, moved: Tensor, early: bool | Tensor
) -> Prox:
    """Move the centres and shrink rho, delta after a step (``moved``: the problems whose step
    was taken; ``early``: within the first EARLY_ITERATIONS); see the module docstring. Both
    columns follow the same rule."""
    step = moved.unsqueeze(-1)
    floor = prox.floor.unsqueeze(-1)
    finetuned = (prox.floor <= prox.finetune_floor).unsqueeze(-1)
    small = prox.terms(P, it) < _PROX_TERM_SMALL
    residual = torch.stack([meas.dual, meas.primal], dim=-1)
    within = torch.stack([meas.dual_ratio <= 1, meas.primal_ratio <= 1], dim=-1)
    progress = (residual < _PROGRESS * prox.previous) | within | (finetuned & (prox.params <= floor) & small)
    progress = progress & step

    # Without progress the parameters still shrink slowly while the prox term is small, and
    # also once progress has stalled for long: on an infeasible (unbounded) problem the
    # multipliers (iterates) then run off along the certificate, which sharpens it.
    rate = mu_rate.unsqueeze(-1)
    slow_ok = small | (prox.stalls > _STALLS_BEFORE_FINETUNE) | early
    shrink = torch.where(progress, 1 - rate, torch.where(slow_ok, 1 - _SLOW_SHRINK * rate, 1.0))
    params = torch.maximum(floor, torch.where(step, shrink, 1.0) * prox.params)
    if not prox.primal_prox:
        params[:, RHO] = 0.0
    stalls = prox.stalls + (step & ~progress).to(torch.int32)
    # Progress stalled with a parameter at the floor: the floor may be what keeps the iterates
    # from the solution (a local limit of the regularized path) or, with a large prox term, a
    # certificate from sharpening (the multipliers run off at a rate of about 1/delta), so lower
    # it, once.
    stuck = (stalls > _STALLS_BEFORE_FINETUNE) & (params <= floor)
    if not prox.primal_prox:
        stuck[:, RHO] = False
    finetune = stuck.any(-1) & ~finetuned.squeeze(-1)
    centre = torch.cat(
        [
            torch.where(progress[:, RHO : RHO + 1], it.z, prox.zeta),
            torch.where(progress[:, DELTA : DELTA + 1], it.y, prox.centre[:, prox.n :]),
        ],
        dim=1,
    )
    return prox.moved(
        params=params,
        floor=torch.where(finetune, prox.finetune_floor, prox.floor),
        centre=centre,
        stalls=stalls.masked_fill(finetune.unsqueeze(-1), 0),
        previous=torch.where(step, residual, prox.previous),
    )


def after_failure(prox: Prox, failed: Tensor) -> Prox:
    """Raise rho and delta (and the floor, up to eps_abs) of the problems whose factorization or
    step failed, so that their next factorization is better conditioned."""
    up = torch.where(failed, _FAILURE_FACTOR, 1.0).unsqueeze(-1)
    floor = torch.where(failed, (10 * prox.floor).clamp(max=max(prox.floor_cap, prox.finetune_floor)), prox.floor)
    params = torch.maximum(prox.params * up, floor.unsqueeze(-1))
    if not prox.primal_prox:
        params[:, RHO] = 0.0
    return prox.moved(params, floor, prox.centre, prox.stalls, prox.previous)
