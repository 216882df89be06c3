"""The in-house solver as a differentiable layer.

``QPFunction.apply(Q, p, G, h, A, b, settings)`` returns z (B, n) and differentiates through all
six tensors by implicit differentiation of the KKT conditions at the solution (OptNet, Amos &
Kolter 2017). The adjoint system has the same structure as an interior-point Newton step, so it
is solved by the solver's own KKT forms: one factorization at the final weights lam / s (the
dual form reuses its factor of Q from the forward pass and refactors only the (m+k)-sized
matrix). The proximal terms vanish at the solution, so they are left out of the adjoint.

Conventions:
* A tensor given without its batch dimension is shared by the batch, and its gradient is the
  **sum** of the per-problem gradients (qpth averages them instead).
* Problems that were not solved (SOLVED or SOLVED_INACCURATE) get a zero gradient and a warning
  naming them; never NaN.
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
from qpbench.solver.state import Iterate
from qpbench.status import Status

# The adjoint system is the KKT system at the solution, whose active rows have weights lam/s of
# 1e12 and more; solved as it is, the gradient is lost (measured: relative error 1.0 on lasso and
# LP problems). It is solved with the inverse weights s/lam + delta for this delta, which gives
# the gradient of the interior-point-smoothed problem, O(delta) from the exact one (measured
# ~1e-8 relative at 1e-8), and refined against the system without proximal terms.
BACKWARD_DELTA = {torch.float64: 1e-8, torch.float32: 1e-4}


def adjoint_solve(sol: QPSolution, grad_z: Tensor, refine_steps: int = 2) -> tuple[Tensor, Tensor, Tensor]:
    """Solve K' [dz; dlam_tilde; dnu] = [-grad_z; 0; 0] at the solution, in ORIGINAL units.

    dlam_tilde = lam o dlam in OptNet's notation. Each KKT form solves its own problems; the
    dual form reuses its factor of Q from the forward pass. Returns (dz, dlam_tilde, dnu).
    """
    info = sol.info
    P = info.scaled
    B, n, m, k = P.batch_size, P.Q.shape[-1], P.G.shape[1], P.A.shape[1]
    it = Iterate(info.scaled_iterate, n, m)
    dt = P.p.dtype
    x, y, u = P.p.new_zeros(B, n), P.p.new_zeros(B, m), P.p.new_zeros(B, k)
    ok = torch.zeros(B, dtype=torch.bool, device=P.p.device)
    for group in info.groups:
        kkt, idx = group.kkt, group.index
        s, lam = it.s[idx], it.lam[idx]
        delta = group.delta.clamp_min(BACKWARD_DELTA[dt])
        w_inv = s / lam + delta.unsqueeze(-1)
        fac = kkt.factor(w_inv, group.rho, delta)
        Pg = kkt.prob
        a = -(Pg.c.unsqueeze(-1) * Pg.D) * grad_z[idx].to(dt)
        zero = torch.zeros_like(delta)
        e, g = a.new_zeros(len(idx), k), a.new_zeros(len(idx), m)
        d = kkt.solve_refined(fac, a, e, g, w_inv, zero, zero, refine_steps)
        assert d.dz is not None
        x[idx], y[idx], u[idx], ok[idx] = d.dz, d.dlam, d.dnu, fac.ok
    c = P.c.unsqueeze(-1)
    dz = P.D * x
    dlam = (P.E * y / c).masked_fill(info.absent, 0.0)
    dnu = P.F * u / c
    ok = (ok & torch.isfinite(dz).all(-1) & torch.isfinite(dlam).all(-1) & torch.isfinite(dnu).all(-1)).unsqueeze(-1)
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
        check: str = "full",
    ) -> Tensor:
        """``check`` is QPBatch's validation level; "full" (the default) is what ``solve`` gets
        from a QPBatch built by hand, positive semidefiniteness of Q included."""
        for name, t in zip("QpGhAb", (Q, p, G, h, A, b), strict=True):
            if t is not None and not isinstance(t, Tensor):
                raise ValueError(f"{name} must be a torch.Tensor or None, got {type(t).__name__}")
        batch = as_batch(*(None if t is None else t.detach() for t in (Q, p, G, h, A, b)), check=check)
        sol = solve(batch, settings)
        ctx.sol = sol
        ctx.shapes = [None if t is None else t.shape for t in (Q, p, G, h, A, b)]
        return sol.z

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_z: Tensor) -> tuple[Tensor | None, ...]:
        sol: QPSolution = ctx.sol
        # An inaccurately solved problem sits at the fixed point to its dtype's accuracy: its
        # implicit gradient is as good as the solution, so it gets one.
        solved = sol.solved | (sol.status == int(Status.SOLVED_INACCURATE))
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
        # Rows given per call count on a layer built without any (m = 0 or k = 0) too (G comes
        # with h, checked above).
        rows_G = bool(self.m) or "h" in overrides
        rows_A = bool(self.k) or "A" in overrides or "b" in overrides
        return QPFunction.apply(
            Q.to(dtype),
            p.to(dtype),
            G.to(dtype) if rows_G else None,
            h.to(dtype) if rows_G else None,
            A.to(dtype) if rows_A else None,
            b.to(dtype) if rows_A else None,
            self.settings,
        )
