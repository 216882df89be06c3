"""The KKT system of one interior-point iteration (slacks eliminated), batched.

Each Newton step, and the backward pass, solves for (dz, dlam, dnu):

    (Q + rho I) dz + G' dlam + A' dnu = a
    G dz - W^-1 dlam                  = g        W = diag(w), w = lam / s
    A dz - delta dnu                  = e

Two factorizations, chosen by cost:

* ``primal``: eliminate dlam = W (G dz - g); Cholesky of the n x n matrix
  H = Q + rho I + G' W G (formed every iteration: m n^2 + n^3/3 flops), then the k x k Schur
  complement A H^-1 A' + delta I for the equalities.
* ``dual``: eliminate dz = Qr^-1 (a - C' dy) with C = [G; A], Qr = Q (or Q + rho I where Q
  alone is not safely positive definite) factored ONCE, with Y = Qr^-1 C' and K = C Y formed
  once; each iteration factors only the (m+k) x (m+k) matrix K + diag(W^-1, delta I)
  ((m+k)^3/3 flops). Solving for the multipliers first avoids the cancellation of applying
  H^-1 through the Woodbury identity. Predictor and corrector share everything that depends on
  a and e (``shared_rhs``), and the predictor skips dz.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from qpbench.solver.linalg import cholesky, cholesky_solve
from qpbench.solver.result import WorkCounts
from qpbench.solver.scaling import ScaledProblem


def bmv(M: Tensor, v: Tensor) -> Tensor:
    """Batched matrix x vector: (B, r, c) @ (B, c) -> (B, r)."""
    return torch.matmul(M, v.unsqueeze(-1)).squeeze(-1)


def bmtv(M: Tensor, v: Tensor) -> Tensor:
    """Batched vector x matrix, M' v: (B, r) @ (B, r, c) -> (B, c)."""
    return torch.matmul(v.unsqueeze(-2), M).squeeze(-2)


@dataclass
class SharedRHS:
    a: Tensor  # (B, n)
    e: Tensor  # (B, k)
    v_cv: Tensor | None  # dual form: [Qr^-1 a; C Qr^-1 a] (B, n+m+k)


@dataclass
class Factor:
    """One iteration's factorization; which fields are set depends on the form."""

    w: Tensor  # (B, m) the weights it was built with
    L: Tensor | None  # primal: chol(H) (B, n, n); dual: chol(C Qr^-1 C' + D) (B, m+k, m+k)
    Y: Tensor | None  # primal with equalities: H^-1 A' (B, n, k)
    Ls: Tensor | None  # primal with equalities: chol(A H^-1 A' + delta I) (B, k, k)
    ok: Tensor  # (B,) every factorization of this problem succeeded


def _factor_shifted(Q: Tensor, rho: Tensor) -> tuple[Tensor, Tensor]:
    """Cholesky factor of Q + diag(rho) (rho per problem) and its ``ok`` flags; Q is not modified."""
    Qr = Q.clone()
    Qr.diagonal(dim1=-2, dim2=-1).add_(rho.unsqueeze(-1))
    return cholesky(Qr, overwrite=True)


def condition_estimate(Q: Tensor, L: Tensor, steps: int = 8, rho: Tensor | None = None) -> Tensor:
    """(B,) estimate of cond(Q + rho I) by power iteration on it and inverse iteration with its
    factor L (Q symmetric, L the factor of Q + rho I).

    Both iterations approach their extreme eigenvalue from below, so this slightly underestimates;
    a handful of steps lands within a small factor, which is all the form choice needs.
    """
    g = torch.Generator(device="cpu").manual_seed(0)
    v = torch.rand(Q.shape[0], Q.shape[-1], generator=g, dtype=torch.float64).to(Q) + 0.5
    u = v.clone()
    big = small = Q.new_ones(Q.shape[0])
    for _ in range(steps):
        v = bmtv(Q, v) if rho is None else bmtv(Q, v) + rho.unsqueeze(-1) * v
        big = v.norm(dim=-1)
        v = v / big.clamp_min(1e-300).unsqueeze(-1)
        u = cholesky_solve(L, u)
        small = u.norm(dim=-1)
        u = u / small.clamp_min(1e-300).unsqueeze(-1)
    return big * small


def dual_form_suitable(Q: Tensor, rho: Tensor) -> tuple[Tensor, Tensor]:
    """(B,) bool: Q + rho I is positive definite with a modest condition number; and its Cholesky
    factor, which the dual-form KKT system reuses."""
    L, ok = _factor_shifted(Q, rho)
    if not bool(ok.all()):
        L = torch.where(ok.view(-1, 1, 1), L, torch.eye(Q.shape[-1], dtype=Q.dtype, device=Q.device))
    # The dual form applies Qr^-1 (through Y = Qr^-1 C'): it loses about cond * eps of accuracy.
    limit = 1e7 if Q.dtype == torch.float64 else 1e3
    return ok & (condition_estimate(Q, L, rho=rho) < limit), L


class KKTSystem:
    """Factor and solve the system above for a working set of problems."""

    def __init__(
        self,
        prob: ScaledProblem,
        form: str,
        rho: Tensor,
        delta: Tensor,
        q_factor: Tensor | None = None,
        q_rho: Tensor | None = None,
    ) -> None:
        """Dual form: ``q_factor`` is an already computed (all valid) Cholesky factor of
        Q + q_rho I (q_rho defaults to rho); without it, Q + rho I is factored here."""
        self.prob = prob
        self.form = form
        # (B,) per-problem primal and dual regularization, raised where a factorization fails.
        self.rho = rho
        self.delta = delta
        # Relative shift (times the largest diagonal entry) added after a failed factorization:
        # rounding in a matrix with huge weights is relative to its norm, not absolute.
        self.shift = torch.zeros_like(rho)
        self.m, self.k = prob.G.shape[1], prob.A.shape[1]
        self.work = WorkCounts()  # shared by every compacted copy
        n = prob.Q.shape[-1]
        self.n = n
        if form == "dual":
            # Constraint rows C = [G; A], and QCt = [Q; C]' = [Q, C']: the residuals need Qz, Gz,
            # Az and C'y, which are then two batched products (one pass over the data each), both
            # as row vector x matrix, which is ~2x faster than matrix x column vector on CPU.
            self.C = torch.cat([prob.G, prob.A], dim=1) if self.k else prob.G  # (B, m+k, n)
            self.QCt = torch.cat([prob.Q, self.C.mT], dim=2)  # (B, n, n+m+k)
            q_rho = rho if q_rho is None or q_factor is None else q_rho
            self.q_regularized = bool((q_rho > 0).any())
            self._work: Tensor | None = None
            self._qp: Tensor | None = None  # [Q^-1 p; C Q^-1 p], for newton_rhs
            if q_factor is None:
                self.Lq, self.q_ok = _factor_shifted(prob.Q, rho)
            else:
                self.Lq, self.q_ok = q_factor, torch.ones_like(rho, dtype=torch.bool)
            # Y' = C Qr^-1 and K = C Y from two triangular solves from the right (row layout, no
            # transposed copies) and one product: half the time of forming Qr^-1 explicitly.
            # S = [Y', K] (symmetric K), so dy' S = [(Y dy)', (K dy)'] = [Qr^-1 C' dy; K dy]' is
            # one row-vector product; K is also kept on its own, contiguous for the per-iteration copy.
            X = torch.linalg.solve_triangular(self.Lq.mT, self.C, upper=True, left=False)  # C L^-T
            Yt = torch.linalg.solve_triangular(self.Lq, X, upper=False, left=False)  # C Qr^-1
            self.K = torch.matmul(X, X.mT)  # (B, m+k, m+k) = C Qr^-1 C'
            self.S = torch.cat([Yt, self.K], dim=2)  # (B, m+k, n+m+k)

    @property
    def q_definite(self) -> bool:
        """The unregularized dual form: Q itself was factored, so it is positive definite."""
        return self.form == "dual" and not self.q_regularized

    @property
    def needs_refinement(self) -> bool:
        """Whether Newton directions need refinement against the unregularized system: always in
        the primal form (rho I, shifts), in the dual form only when Q itself was regularized."""
        return not self.q_definite

    def select(self, idx: Tensor) -> KKTSystem:
        """The same system restricted to the problems ``idx`` (compaction of the working set)."""
        new = object.__new__(KKTSystem)
        new.prob = self.prob.select(idx)
        new.form, new.m, new.k = self.form, self.m, self.k
        new.rho, new.delta, new.shift = self.rho[idx], self.delta[idx], self.shift[idx]
        new.n, new.work = self.n, self.work
        if self.form == "dual":
            new.C, new.QCt = self.C[idx], self.QCt[idx]
            new.q_regularized, new._work = self.q_regularized, None
            new._qp = None if self._qp is None else self._qp[idx]
            new.Lq, new.q_ok = self.Lq[idx], self.q_ok[idx]
            new.S, new.K = self.S[idx], self.K[idx]
        return new

    # ------------------------------------------------------------------ factor
    def factor(self, w: Tensor) -> Factor:
        """Factor the system at weights w. The primal form keeps torch's Cholesky kernel: its
        matrices are nearly singular on LPs with equalities (Q + G'WG + rho I, cond ~1e17), and
        the layer's adjoint through them was measured to depend on the kernel's rounding (a
        gradient test on an LP failed with LAPACK's potrf called directly, passed with torch's)."""
        P = self.prob
        self.work.factorizations += P.batch_size
        if self.form == "dual":
            d = torch.cat([1.0 / w, self.delta.unsqueeze(-1).expand(-1, self.k)], dim=1)
            # One buffer per system, overwritten by each factorization (so a Factor is valid until
            # the next call): a fresh 10 MB copy measured several times slower than this.
            if self._work is None:
                self._work = torch.empty_like(self.K)
            M = self._work.copy_(self.K)
            diag = M.diagonal(dim1=-2, dim2=-1)
            diag.add_(d)
            diag.add_((self.shift * diag.amax(-1)).unsqueeze(-1))
            L, ok = cholesky(M, overwrite=True)
            return Factor(w=w, L=L, Y=None, Ls=None, ok=ok & self.q_ok)
        H = P.Q + torch.matmul(P.G.transpose(1, 2) * w.unsqueeze(-2), P.G)
        diag = H.diagonal(dim1=-2, dim2=-1)
        diag.add_((self.rho + self.shift * diag.amax(-1)).unsqueeze(-1))
        L, ok = cholesky(H, lapack_loop=False)
        Y = Ls = None
        if self.k:
            Y = cholesky_solve(L, P.A.mT)
            S = torch.matmul(P.A, Y)
            sdiag = S.diagonal(dim1=-2, dim2=-1)
            sdiag.add_((self.delta + self.shift * sdiag.amax(-1)).unsqueeze(-1))
            Ls, ok_s = cholesky(S, lapack_loop=False)
            ok = ok & ok_s
        return Factor(w=w, L=L, Y=Y, Ls=Ls, ok=ok)

    # ------------------------------------------------------------------ solve
    def solve(self, f: Factor, a: Tensor, g: Tensor, e: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(dz, dlam, dnu) for right-hand sides a (B, n), g (B, m), e (B, k)."""
        if self.form == "dual":
            dz, _, dlam, dnu = self._dual_direction(f, self.shared_rhs(a, e), g, want_z=True)
            return dz, dlam, dnu
        P = self.prob
        r1 = a + bmtv(P.G, f.w * g) if self.m else a
        u = cholesky_solve(f.L, r1)
        if self.k:
            dnu = cholesky_solve(f.Ls, bmv(P.A, u) - e)
            dz = u - bmv(f.Y, dnu)
        else:
            dnu, dz = e, u
        dlam = f.w * (bmv(P.G, dz) - g) if self.m else g
        return dz, dlam, dnu

    # ------------------------------------------------------------------ Newton directions
    def shared_rhs(self, a: Tensor, e: Tensor) -> SharedRHS:
        """The parts of a Newton solve that depend only on a and e, which the predictor and the
        corrector share (they differ only in g)."""
        if self.form != "dual":
            return SharedRHS(a=a, e=e, v_cv=None)
        v = cholesky_solve(self.Lq, a)
        Cv = bmtv(self.QCt[:, :, self.n :], v)  # C v as v' C'
        return SharedRHS(a=a, e=e, v_cv=torch.cat([v, Cv], dim=1))

    def newton_rhs(self, z: Tensor, y: Tensor, Cz: Tensor | None, r_d: Tensor, r_eq: Tensor) -> SharedRHS:
        """``shared_rhs(-r_d, -r_eq)`` at the iterate (z, y = [lam; nu]) with C z = Cz (needed only
        by the unregularized dual form).

        In the unregularized dual form, Qr = Q, so Q^-1 (-r_d) = -z - Q^-1 p - Y y and
        C Q^-1 (-r_d) = -C z - C Q^-1 p - K y: one product y' S instead of two triangular
        solves and a product (Q^-1 p and C Q^-1 p are computed once per solve)."""
        if self.form != "dual" or self.q_regularized:
            return self.shared_rhs(-r_d, -r_eq)
        if self._qp is None:
            qp = cholesky_solve(self.Lq, self.prob.p)
            self._qp = torch.cat([qp, bmtv(self.QCt[:, :, self.n :], qp)], dim=1)
        assert Cz is not None, "the dual form's residuals carry C z"
        v_cv = -(torch.cat([z, Cz], dim=1) + self._qp + bmtv(self.S, y))
        return SharedRHS(a=-r_d, e=-r_eq, v_cv=v_cv)

    def direction(
        self, f: Factor, rhs: SharedRHS, g: Tensor, want_z: bool, refine: int = 0
    ) -> tuple[Tensor | None, Tensor | None, Tensor, Tensor]:
        """(dz, G dz, dlam, dnu) for right-hand sides (rhs.a, g, rhs.e).

        The dual form solves for the multipliers first and, when ``want_z`` is false (the
        predictor only needs dlam), skips dz and G dz (returned as None). ``refine`` passes of
        iterative refinement against the unregularized system (see ``needs_refinement``).
        """
        self.work.solves += self.prob.batch_size * (1 + refine)
        if self.form != "dual":
            dz, dlam, dnu = self.solve_refined(f, rhs.a, g, rhs.e, refine)
            return dz, bmv(self.prob.G, dz) if want_z else None, dlam, dnu
        dz, Gdz, dlam, dnu = self._dual_direction(f, rhs, g, want_z or refine > 0)
        if not refine:
            return dz, Gdz, dlam, dnu
        for _ in range(refine):
            ra, rg, re = self.residual(f, dz, dlam, dnu, rhs.a, g, rhs.e)
            cz, _, cl, cn = self._dual_direction(f, self.shared_rhs(ra, re), rg, want_z=True)
            dz, dlam, dnu = dz + cz, dlam + cl, dnu + cn
        return dz, bmv(self.prob.G, dz) if want_z else None, dlam, dnu

    def _dual_direction(
        self, f: Factor, rhs: SharedRHS, g: Tensor, want_z: bool
    ) -> tuple[Tensor | None, Tensor | None, Tensor, Tensor]:
        """One unrefined dual-form solve: dy from the (m+k) factor, then [dz; C dz] by one product."""
        n, m = self.n, self.m
        dy = cholesky_solve(f.L, rhs.v_cv[:, n:] - torch.cat([g, rhs.e], dim=1))
        if not want_z:
            return None, None, dy[:, :m], dy[:, m:]
        zC = rhs.v_cv - bmtv(self.S, dy)  # [dz; C dz]
        return zC[:, :n], zC[:, n : n + m], dy[:, :m], dy[:, m:]

    def residual(
        self, f: Factor, dz: Tensor, dlam: Tensor, dnu: Tensor, a: Tensor, g: Tensor, e: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Residual of the UNregularized system (rho = delta = 0), for iterative refinement."""
        P = self.prob
        ra = a - bmv(P.Q, dz)
        rg = g
        re = e
        if self.m:
            ra = ra - bmtv(P.G, dlam)
            rg = g - bmv(P.G, dz) + dlam / f.w
        if self.k:
            ra = ra - bmtv(P.A, dnu)
            re = e - bmv(P.A, dz)
        return ra, rg, re

    def solve_refined(
        self, f: Factor, a: Tensor, g: Tensor, e: Tensor, steps: int
    ) -> tuple[Tensor, Tensor, Tensor]:
        dz, dlam, dnu = self.solve(f, a, g, e)
        for _ in range(steps):
            ra, rg, re = self.residual(f, dz, dlam, dnu, a, g, e)
            cz, cl, cn = self.solve(f, ra, rg, re)
            dz, dlam, dnu = dz + cz, dlam + cl, dnu + cn
        return dz, dlam, dnu
