"""Forward solves for finite differences: a reference solve, then exact active-set solves.

Finite differences need forward solutions far more accurate than the step (error ~ tol / step).
An iterative solver at tolerance 1e-10 with step 1e-5 leaves errors ~1e-5, too coarse to check
gradients to 1e-6. So the reference solver (Clarabel) is used only to find the active set; every
forward solve used for differences is then the exact solution of the KKT system with that active
set (one dense linear solve in float64). Such a point is the true optimum of the perturbed problem
exactly when it is primal feasible and its multipliers are non-negative; that is checked for every
perturbed solve, so a step that changes the active set is detected, never silently differenced.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from qpbench.problem import QPBatch
from qpbench.status import Status

# Only the active set is taken from the reference, so this need not be extreme.
REFERENCE_TOLERANCE = 1e-10


@dataclass
class KKTPoint:
    """Solution of the active-set KKT system; tensors carry any leading dims (..., B, ·)."""

    z: Tensor
    lam: Tensor  # zero on inactive rows by construction
    nu: Tensor
    slack: Tensor  # h - G z
    ok: Tensor  # bool: the linear system was solved and the result is finite


def reference_active_set(batch: QPBatch) -> tuple[Tensor, Tensor, list[str]]:
    """Solve each problem with the reference (Clarabel, float64, tolerance 1e-10); return
    (active (B, m) bool, solved (B,) bool, one message per unsolved problem).

    A row is active when its multiplier exceeds its slack: at an interior-point solution one of
    the two is near zero, and which one tells the side of complementarity.
    """
    from qpbench.reference import reference_solve

    b64 = batch.to(device="cpu", dtype=torch.float64)
    ref = reference_solve(b64, tolerance=REFERENCE_TOLERANCE)
    solved = torch.tensor([s is Status.SOLVED for s in ref.status], dtype=torch.bool)
    slack = b64.expanded("h") - (b64.expanded("G") @ ref.z.unsqueeze(-1)).squeeze(-1)
    active = (ref.lam > slack) & solved.unsqueeze(-1)
    messages = [f"reference status {raw}" for raw, ok in zip(ref.raw_status, solved.tolist(), strict=True)
                if not ok]
    return active.detach(), solved, messages


def kkt_system(
    Q: Tensor, p: Tensor, G: Tensor, h: Tensor, A: Tensor, b: Tensor, active: Tensor
) -> tuple[Tensor, Tensor]:
    """The KKT matrix and right-hand side of min 1/2 z'Qz + p'z s.t. G_a z = h_a, A z = b.

    All arguments carry the same leading dims (..., ·). Inactive rows get lambda = 0 through an
    identity row, so every problem in the batch has a system of the same size n + m + k.
    """
    n, m, k = Q.shape[-1], G.shape[-2], A.shape[-2]
    N = n + m + k
    a = active.to(Q.dtype)
    K = Q.new_zeros(*Q.shape[:-2], N, N)
    K[..., :n, :n] = 0.5 * (Q + Q.transpose(-1, -2))
    Ga = G * a.unsqueeze(-1)
    K[..., :n, n : n + m] = Ga.transpose(-1, -2)
    K[..., n : n + m, :n] = Ga
    K[..., n : n + m, n : n + m] = torch.diag_embed(1.0 - a)
    K[..., :n, n + m :] = A.transpose(-1, -2)
    K[..., n + m :, :n] = A
    rhs = torch.cat([-p, h * a, b], dim=-1)
    return K, rhs


def kkt_condition(K: Tensor) -> Tensor:
    """2-norm condition number of each KKT matrix (inf when singular)."""
    sv = torch.linalg.svdvals(K)
    return sv[..., 0] / sv[..., -1]


def kkt_solve(
    Q: Tensor, p: Tensor, G: Tensor, h: Tensor, A: Tensor, b: Tensor, active: Tensor
) -> KKTPoint:
    """Exact solution of the active-set QP (see :func:`kkt_system`); ``ok`` False where singular."""
    K, rhs = kkt_system(Q, p, G, h, A, b, active)
    return solve_kkt_system(K, rhs, G, h, active)


def solve_kkt_system(K: Tensor, rhs: Tensor, G: Tensor, h: Tensor, active: Tensor) -> KKTPoint:
    """:func:`kkt_solve` for a system already built by :func:`kkt_system` from these G, h, active."""
    n, m = G.shape[-1], G.shape[-2]
    x, info = torch.linalg.solve_ex(K, rhs.unsqueeze(-1))
    x = x.squeeze(-1)
    ok = (info == 0) & torch.isfinite(x).all(-1)
    x = torch.where(ok.unsqueeze(-1), x, torch.zeros_like(x))
    z, lam, nu = x[..., :n], x[..., n : n + m] * active.to(x.dtype), x[..., n + m :]
    slack = h - (G @ z.unsqueeze(-1)).squeeze(-1)
    return KKTPoint(z=z, lam=lam, nu=nu, slack=slack, ok=ok)


def switch_distance(point: KKTPoint, active: Tensor) -> Tensor:
    """How far each row is from changing sides: lambda for active rows, slack for inactive ones.

    Negative means the point is not optimal for this active set (the active set has changed).
    """
    return torch.where(active, point.lam, point.slack)
