"""Ruiz equilibration of a batch of QPs, per problem.

The scaled problem uses z = D z_hat, and rows scaled by E (inequalities) and F (equalities), with
the cost multiplied by c:

    Q_hat = c D Q D,  p_hat = c D p,  G_hat = E G D,  h_hat = E h,  A_hat = F A D,  b_hat = F b.

Then lam = E lam_hat / c, nu = F nu_hat / c, and residuals map back element-wise, so the
solver can test convergence on the original data without forming it again.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from qpbench.problem import QPBatch


@dataclass
class ScaledProblem:
    Q: Tensor  # (B, n, n)
    p: Tensor  # (B, n)
    G: Tensor  # (B, m, n)
    h: Tensor  # (B, m)
    A: Tensor  # (B, k, n)
    b: Tensor  # (B, k)
    D: Tensor  # (B, n) column scaling
    E: Tensor  # (B, m) inequality row scaling
    F: Tensor  # (B, k) equality row scaling
    c: Tensor  # (B,) cost scaling

    @property
    def batch_size(self) -> int:
        return self.Q.shape[0]

    def select(self, idx: Tensor) -> ScaledProblem:
        return ScaledProblem(*(getattr(self, f)[idx] for f in self.__dataclass_fields__))


def _col_inf_norm(M: Tensor) -> Tensor:
    """Infinity norm of each column of (B, r, n) -> (B, n); zeros when r == 0."""
    if M.shape[-2] == 0:
        return M.new_zeros(M.shape[0], M.shape[-1])
    return M.abs().amax(dim=-2)


def _row_inf_norm(M: Tensor) -> Tensor:
    if M.shape[-2] == 0:
        return M.new_zeros(M.shape[0], 0)
    return M.abs().amax(dim=-1)


def _safe_inv_sqrt(x: Tensor) -> Tensor:
    # Empty rows/columns (norm 0) keep scale 1; extreme norms are clipped so scaling stays sane.
    return torch.where(x > 0, x.clamp(1e-4, 1e4).rsqrt(), torch.ones_like(x))


def equilibrate(batch: QPBatch, iterations: int) -> ScaledProblem:
    """Ruiz scaling of the KKT matrix [[Q, G', A'], [G, 0, 0], [A, 0, 0]] plus cost scaling."""
    Q = batch.expanded("Q").clone()
    p = batch.expanded("p").clone()
    G = batch.expanded("G").clone()
    h = batch.expanded("h").clone()
    A = batch.expanded("A").clone()
    b = batch.expanded("b").clone()
    B, n = p.shape
    D = p.new_ones(B, n)
    E = p.new_ones(B, G.shape[1])
    F = p.new_ones(B, A.shape[1])
    c = p.new_ones(B)
    for _ in range(iterations):
        # Column norms of the KKT matrix for the z block, row norms for the constraint blocks.
        col = torch.maximum(_col_inf_norm(Q), torch.maximum(_col_inf_norm(G), _col_inf_norm(A)))
        d = _safe_inv_sqrt(col)
        e = _safe_inv_sqrt(_row_inf_norm(G))
        f = _safe_inv_sqrt(_row_inf_norm(A))
        Q.mul_(d.unsqueeze(-1)).mul_(d.unsqueeze(-2))
        G.mul_(e.unsqueeze(-1)).mul_(d.unsqueeze(-2))
        A.mul_(f.unsqueeze(-1)).mul_(d.unsqueeze(-2))
        p.mul_(d)
        h.mul_(e)
        b.mul_(f)
        D.mul_(d)
        E.mul_(e)
        F.mul_(f)
    if iterations:
        # Cost scaling: bring the larger of mean |Q| column norm and |p| to about one.
        q_norm = Q.abs().amax(dim=-2).mean(dim=-1)
        p_norm = p.abs().amax(dim=-1)
        gamma = torch.maximum(q_norm, p_norm)
        gamma = torch.where(gamma > 0, 1.0 / gamma.clamp(1e-4, 1e4), torch.ones_like(gamma))
        Q.mul_(gamma.view(B, 1, 1))
        p.mul_(gamma.view(B, 1))
        c = gamma
    return ScaledProblem(Q=Q, p=p, G=G, h=h, A=A, b=b, D=D, E=E, F=F, c=c)
