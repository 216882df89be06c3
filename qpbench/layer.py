"""The in-house solver as a differentiable layer.

``QPFunction.apply(Q, p, G, h, A, b, settings)`` returns z (B, n) and differentiates through all
six tensors by implicit differentiation of the KKT conditions at the solution (OptNet, Amos &
Kolter 2017). The adjoint system has the same structure as an interior-point Newton step, so it
is solved by the solver's own KKT machinery: one factorization at the final weights
lam / s (in the 'dual' KKT form the factor of Q + rho I from the forward pass is reused and only
the (m+k) x (m+k) matrix is refactored).

Conventions:
* A tensor given without its batch dimension is shared by the batch, and its gradient is the
  **sum** of the per-problem gradients (qpth averages them instead).
* Problems whose status is not SOLVED get a zero gradient and a warning naming them; never NaN.
* Double backward (gradients of gradients) is not supported.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

from qpbench.problem import as_batch
from qpbench.solver import SolverSettings, solve
from qpbench.solver.result import QPSolution
from qpbench.status import Status

# The adjoint system is solved with the weights lam/s clipped to [1/clip, clip] (scaled data).
# At a tight solution the active weights reach 1e12 and more, which makes the system so badly
# conditioned that the gradient is lost (measured: relative error 1.0 on lasso and LP problems).
# Clipping gives the interior-point-smoothed gradient, which differs from the exact one by
# O(1/clip); at 1e8 the measured error is ~1e-8, at 1e6 it is ~1e-5.
BACKWARD_WEIGHT_CLIP = {torch.float64: 1e8, torch.float32: 1e4}


def adjoint_solve(sol: QPSolution, grad_z: Tensor, refine_steps: int = 2) -> tuple[Tensor, Tensor, Tensor]:
    """Solve K' [dz; dlam_tilde; dnu] = [-grad_z; 0; 0] at the solution, in ORIGINAL units.

    dlam_tilde = lam o dlam in OptNet's notation. Returns (dz, dlam_tilde, dnu).
    """
    kkt = sol.info["kkt"]
    P = sol.info["scaled"]
    it = sol.info["scaled_iterate"]
    dt = P.p.dtype
    w_hi = BACKWARD_WEIGHT_CLIP[dt]
    w = (it.lam / it.s).clamp(1.0 / w_hi, w_hi) if kkt.m else it.s
    f = kkt.factor(w)
    c = P.c.unsqueeze(-1)
    a = -(c * P.D) * grad_z.to(dt)
    g = a.new_zeros(a.shape[0], kkt.m)
    e = a.new_zeros(a.shape[0], kkt.k)
    x, y, u = kkt.solve_refined(f, a, g, e, refine_steps)
    dz = P.D * x
    dlam = P.E * y / c if kkt.m else y
    dnu = P.F * u / c if kkt.k else u
    ok = (f.ok & torch.isfinite(dz).all(-1)).unsqueeze(-1)
    return torch.where(ok, dz, 0), torch.where(ok, dlam, 0), torch.where(ok, dnu, 0)


class QPFunction(torch.autograd.Function):
    """z = argmin 1/2 z'Qz + p'z s.t. Gz <= h, Az = b, batched; see the module docstring."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        Q: Tensor,
        p: Tensor,
        G: Tensor | None,
        h: Tensor | None,
        A: Tensor | None,
        b: Tensor | None,
        settings: SolverSettings | None = None,
        check: str = "basic",
    ) -> Tensor:
        batch = as_batch(*(None if t is None else t.detach() for t in (Q, p, G, h, A, b)), check=check)
        sol = solve(batch, settings)
        ctx.sol = sol
        ctx.shapes = [None if t is None else t.shape for t in (Q, p, G, h, A, b)]
        return sol.z

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_z: Tensor) -> tuple[Tensor | None, ...]:
        sol: QPSolution = ctx.sol
        solved = sol.solved
        if not bool(solved.all()):
            bad = torch.nonzero(~solved).squeeze(1).tolist()
            labels = [Status(int(sol.status[i])).label for i in bad]
            warnings.warn(
                f"QPFunction backward: problems {bad} have status {labels}; their gradient is set to zero",
                RuntimeWarning,
                stacklevel=2,
            )
        grad_z = torch.where(solved.unsqueeze(-1), grad_z, 0)
        dz, dlam, dnu = adjoint_solve(sol, grad_z)
        z, lam, nu = sol.z, sol.lam, sol.nu
        # Built only for the inputs that need a gradient (Q, G and A are batched outer products).
        grads = {
            "Q": lambda: 0.5 * (dz.unsqueeze(-1) * z.unsqueeze(-2) + z.unsqueeze(-1) * dz.unsqueeze(-2)),
            "p": lambda: dz,
            "G": lambda: dlam.unsqueeze(-1) * z.unsqueeze(-2) + lam.unsqueeze(-1) * dz.unsqueeze(-2),
            "h": lambda: -dlam,
            "A": lambda: dnu.unsqueeze(-1) * z.unsqueeze(-2) + nu.unsqueeze(-1) * dz.unsqueeze(-2),
            "b": lambda: -dnu,
        }
        out: list[Tensor | None] = []
        for name, shape, need in zip("QpGhAb", ctx.shapes, ctx.needs_input_grad[:6], strict=True):
            if shape is None or not need:
                out.append(None)
                continue
            g = grads[name]()
            if len(shape) == g.dim() - 1:  # shared tensor: sum over the batch
                g = g.sum(0)
            out.append(g.reshape(shape))
        return (*out, None, None)


class QPLayer(nn.Module):
    """An OptNet-style layer: z*(x) = argmin 1/2 z'Qz + p'z  s.t.  Gz <= h,  Az = b.

    Learnable parameters (each may be replaced per call by an input-dependent tensor):

    * Q = L L' + eps I with L lower triangular (positive definite by construction);
    * G (m x n) and h = G z0 + s0 with s0 = softplus(t) > 0, so the problem stays feasible;
    * A (k x n) and b = A z0 (consistent with the same z0).

    ``forward(p)`` takes p of shape (B, n) (usually the previous layer's output). Example::

        layer = QPLayer(n=10, m=20)
        model = nn.Sequential(nn.Linear(5, 10), layer)
        loss = model(x).square().sum(); loss.backward()
    """

    def __init__(
        self,
        n: int,
        m: int,
        k: int = 0,
        eps: float = 1e-4,
        settings: SolverSettings | None = None,
        seed: int | None = None,
        dtype: torch.dtype = torch.float64,
    ) -> None:
        super().__init__()
        if n < 1 or m < 0 or k < 0:
            raise ValueError(f"need n >= 1, m >= 0, k >= 0; got n={n}, m={m}, k={k}")
        if k >= n:
            raise ValueError(f"k (equalities) must be smaller than n, got k={k}, n={n}")
        gen = torch.Generator().manual_seed(seed) if seed is not None else None
        self.n, self.m, self.k, self.eps = n, m, k, eps
        self.settings = settings
        self.L = nn.Parameter(torch.eye(n, dtype=dtype) + 0.1 * torch.randn(n, n, generator=gen, dtype=dtype).tril(-1))
        self.G = nn.Parameter(torch.randn(m, n, generator=gen, dtype=dtype) / n**0.5)
        self.z0 = nn.Parameter(torch.zeros(n, dtype=dtype))
        self.t0 = nn.Parameter(torch.ones(m, dtype=dtype))
        self.A = nn.Parameter(torch.randn(k, n, generator=gen, dtype=dtype) / n**0.5)

    def Q(self) -> Tensor:
        L = self.L.tril()
        return L @ L.T + self.eps * torch.eye(self.n, dtype=L.dtype, device=L.device)

    def forward(self, p: Tensor, **overrides: Tensor) -> Tensor:
        unknown = set(overrides) - {"Q", "G", "h", "A", "b"}
        if unknown:
            raise ValueError(f"unknown overrides {sorted(unknown)}; allowed: Q, G, h, A, b")
        if p.shape[-1] != self.n:
            raise ValueError(f"p must have last dimension n={self.n}, got shape {tuple(p.shape)}")
        if "G" in overrides and "h" not in overrides:
            raise ValueError("when G is overridden, h must be given too")
        # Defaults are built only when not overridden (Q = LL' + eps I costs a matmul).
        Q = overrides["Q"] if "Q" in overrides else self.Q()
        G = overrides.get("G", self.G)
        h = overrides["h"] if "h" in overrides else G @ self.z0 + nn.functional.softplus(self.t0)
        A = overrides.get("A", self.A)
        b = overrides["b"] if "b" in overrides else A @ self.z0
        dtype = self.L.dtype
        return QPFunction.apply(
            Q.to(dtype),
            p.to(dtype),
            G.to(dtype) if self.m else None,
            h.to(dtype) if self.m else None,
            A.to(dtype) if self.k else None,
            b.to(dtype) if self.k else None,
            self.settings,
        )
