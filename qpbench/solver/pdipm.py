"""Batched primal-dual interior-point method with Mehrotra predictor-corrector.

Variables of the (scaled) problem: z, slacks s > 0 with Gz + s = h, multipliers lam > 0 and nu.
One short function per step of the algorithm: initial point, residuals, convergence and
infeasibility tests, Newton direction, step length, update.

Each problem of the batch has its own status. A problem that has a status stops changing (its
step is masked to zero) and, once enough problems have finished, is dropped from the working set
(compaction), so finished problems stop costing. The loop synchronizes with the host once per
iteration (the count of active problems), which matters on CUDA.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from torch import Tensor

from qpbench.problem import QPBatch
from qpbench.solver.kkt import Factor, KKTSystem, SharedRHS, bmtv, bmv, dual_form_suitable
from qpbench.solver.result import QPSolution
from qpbench.solver.scaling import ScaledProblem, equilibrate
from qpbench.solver.settings import SolverSettings
from qpbench.status import Status

_RHO_MAX = 1e-2  # past this primal regularization a problem is declared a numerical error
_MAX_BAD_STEPS = 5  # consecutive failed factorizations/steps before NUMERICAL_ERROR
_DIVERGENCE_FACTOR = 1e3  # merit this much worse than the best seen: stop, return the best
# Upper bound of the weights lam/s; past it they carry no information at the dtype's accuracy
# but wreck the factorization (float32 needs the tighter cap).
WEIGHT_CAP = {torch.float64: 1e30, torch.float32: 1e8}


def _inf_norm(x: Tensor) -> Tensor:
    """Infinity norm over the last dim; 0 for an empty last dim."""
    if x.shape[-1] == 0:
        return x.new_zeros(x.shape[:-1])
    return x.abs().amax(dim=-1)


@dataclass
class Iterate:
    """(z, s, lam, nu) packed in one (B, n + 2m + k) tensor, so that the per-iteration updates
    (step, finiteness test, keeping the best iterate) are one op each instead of four."""

    x: Tensor
    n: int
    m: int

    @staticmethod
    def pack(z: Tensor, s: Tensor, lam: Tensor, nu: Tensor) -> Iterate:
        return Iterate(torch.cat([z, s, lam, nu], dim=1), z.shape[1], s.shape[1])

    @property
    def z(self) -> Tensor:
        return self.x[:, : self.n]

    @property
    def s(self) -> Tensor:
        return self.x[:, self.n : self.n + self.m]

    @property
    def lam(self) -> Tensor:
        return self.x[:, self.n + self.m : self.n + 2 * self.m]

    @property
    def nu(self) -> Tensor:
        return self.x[:, self.n + 2 * self.m :]

    @property
    def y(self) -> Tensor:
        """[lam, nu]: all multipliers, in the order of C = [G; A]."""
        return self.x[:, self.n + self.m :]

    @property
    def s_lam(self) -> Tensor:
        """[s, lam]: the variables that must stay positive."""
        return self.x[:, self.n : self.n + 2 * self.m]

    def select(self, idx: Tensor) -> Iterate:
        return Iterate(self.x[idx], self.n, self.m)


@dataclass
class Direction:
    z: Tensor | None  # None for the dual form's predictor, which needs only ds and dlam
    s: Tensor
    lam: Tensor
    nu: Tensor


@dataclass
class Residuals:
    r_d: Tensor  # Qz + p + G'lam + A'nu
    r_in: Tensor  # Gz + s - h
    r_eq: Tensor  # Az - b
    Qz: Tensor
    Gz: Tensor
    Az: Tensor
    Cty: Tensor  # G'lam + A'nu
    Cz: Tensor | None = None  # [Gz; Az] in one piece (dual form, where the product makes it so)
    # Q x, G x, A x for the unboundedness test's direction x (the last step), when asked for
    Qx: Tensor | None = None
    Gx: Tensor | None = None
    Ax: Tensor | None = None

    def select(self, idx: Tensor) -> Residuals:
        values = (getattr(self, name) for name in self.__dataclass_fields__)
        return Residuals(*(None if v is None else v[idx] for v in values))


# --------------------------------------------------------------------------- steps
def residuals(kkt: KKTSystem, it: Iterate, x: Tensor | None = None) -> Residuals:
    """Residuals of the iterate; with ``x``, also Q x, G x, A x (for the unboundedness test).

    The dual form (the fast path) gets Qz, Gz, Az (and Qx, Gx, Ax) from one pass over
    [Q; G; A]. The primal form, used for the hard, degenerate problems, keeps separate products:
    their rounding is what its Maros-Meszaros results were measured with, and its time is
    dominated by forming Q + G'WG anyway.
    """
    P = kkt.prob
    n, m = P.Q.shape[-1], kkt.m
    kkt.work.products += P.batch_size
    if kkt.form == "dual":
        rows = it.z.unsqueeze(-2) if x is None else torch.stack([it.z, x], dim=-2)
        QC = torch.matmul(rows, kkt.QCt)
        Qz, Gz, Az, Cz = QC[:, 0, :n], QC[:, 0, n : n + m], QC[:, 0, n + m :], QC[:, 0, n:]
        Cty = bmtv(kkt.C, it.y)
    else:
        Qz, Gz, Az, Cz = bmv(P.Q, it.z), bmv(P.G, it.z), bmv(P.A, it.z), None
        Cty = bmtv(P.G, it.lam) + bmtv(P.A, it.nu)
    r = Residuals(r_d=Qz + P.p + Cty, r_in=Gz + it.s - P.h, r_eq=Az - P.b, Qz=Qz, Gz=Gz, Az=Az, Cty=Cty, Cz=Cz)
    if x is not None and kkt.form == "dual":
        r.Qx, r.Gx, r.Ax = QC[:, 1, :n], QC[:, 1, n : n + m], QC[:, 1, n + m :]
    elif x is not None:
        r.Qx, r.Gx, r.Ax = bmv(P.Q, x), bmv(P.G, x), bmv(P.A, x)
    return r


def original_residuals(P: ScaledProblem, it: Iterate, r: Residuals, with_scales: bool = True) -> dict[str, Tensor]:
    """DESIGN.md's residuals in the ORIGINAL data, and (``with_scales``) the scales that relative
    tolerances multiply; without a relative tolerance those twelve reductions are skipped."""
    c = P.c.unsqueeze(-1)
    cD = c * P.D
    viol = ((r.Gz - P.h) / P.E).clamp_min(0) if P.E.shape[-1] else P.E
    primal = torch.maximum(_inf_norm(viol), _inf_norm(r.r_eq / P.F))
    dual = _inf_norm(r.r_d / cD)
    zQz = (it.z * r.Qz).sum(-1)
    pz = (P.p * it.z).sum(-1)
    hl = (P.h * it.lam).sum(-1)
    bn = (P.b * it.nu).sum(-1)
    gap = (zQz + pz + hl + bn).abs() / P.c
    if not with_scales:
        return {"primal": primal, "dual": dual, "gap": gap}
    primal_scale = torch.stack(
        [_inf_norm(r.Gz / P.E), _inf_norm(P.h / P.E), _inf_norm(r.Az / P.F), _inf_norm(P.b / P.F)]
    ).amax(0)
    dual_scale = torch.stack(
        [
            _inf_norm(r.Qz / cD),
            _inf_norm(P.p / cD),
            _inf_norm(bmtv(P.G, it.lam) / cD),
            _inf_norm(bmtv(P.A, it.nu) / cD),
        ]
    ).amax(0)
    gap_scale = torch.stack([zQz.abs(), pz.abs(), hl.abs(), bn.abs()]).amax(0) / P.c
    return {
        "primal": primal,
        "dual": dual,
        "gap": gap,
        "primal_scale": primal_scale,
        "dual_scale": dual_scale,
        "gap_scale": gap_scale,
    }


def tolerance_ratios(res: dict[str, Tensor], eps_abs: float, eps_rel: float) -> dict[str, Tensor]:
    """Each residual divided by its tolerance: a problem has converged when all three are <= 1."""
    if not eps_rel:
        return {key: res[key] / max(eps_abs, 1e-300) for key in ("primal", "dual", "gap")}
    return {
        key: res[key] / (eps_abs + eps_rel * res[f"{key}_scale"]).clamp_min(1e-300)
        for key in ("primal", "dual", "gap")
    }


def converged(ratios: dict[str, Tensor]) -> Tensor:
    return (ratios["primal"] <= 1) & (ratios["dual"] <= 1) & (ratios["gap"] <= 1)


def primal_infeasible(P: ScaledProblem, it: Iterate, r: Residuals, eps: float) -> Tensor:
    """Farkas certificate from the (diverging) multipliers: G'lam + A'nu ~ 0, h'lam + b'nu < 0."""
    y_norm = torch.maximum(_inf_norm(it.lam), _inf_norm(it.nu)).clamp_min(1e-300)
    ray = r.Cty / y_norm.unsqueeze(-1)
    value = ((P.h * it.lam).sum(-1) + (P.b * it.nu).sum(-1)) / y_norm
    return (y_norm > 1.0 / eps) & (_inf_norm(ray) <= eps) & (value < -eps)


def dual_infeasible(P: ScaledProblem, dz: Tensor, r: Residuals, eps: float) -> Tensor:
    """Unboundedness certificate from the last step x = dz: Qx ~ 0, Gx <= ~0, Ax ~ 0, p'x < 0
    (all relative to |x|; r holds Q dz, G dz, A dz)."""
    x_norm = _inf_norm(dz).clamp_min(1e-300)
    inv = 1.0 / x_norm
    return (
        (x_norm > 0)
        & (_inf_norm(r.Qx) * inv <= eps)
        & (_inf_norm(r.Gx.clamp_min(0)) * inv <= eps)
        & (_inf_norm(r.Ax) * inv <= eps)
        & ((P.p * dz).sum(-1) * inv < -eps)
    )


def max_step(x: Tensor, dx: Tensor) -> Tensor:
    """Largest alpha in [0, 1] with x + alpha dx >= 0 (x > 0), per problem."""
    if x.shape[-1] == 0:
        return x.new_ones(x.shape[0])
    ratio = torch.where(dx < 0, -x / dx, torch.full_like(x, float("inf")))
    return ratio.amin(-1).clamp(max=1.0)


def newton_direction(
    kkt: KKTSystem, f: Factor, rhs: SharedRHS, it: Iterate, r: Residuals, rc: Tensor, refine: int, want_z: bool
) -> Direction:
    """Direction of the linearized KKT system with complementarity right-hand side ``rc``
    (s o lam + ds o dlam = sigma mu, linearized: lam o ds + s o dlam = -rc). Without ``want_z``
    (the predictor) dz is None and ds comes from the linearized complementarity; the step taken
    uses ds = -r_in - G dz, so the primal residual shrinks exactly by (1 - alpha)."""
    g = -r.r_in + rc / it.lam
    dz, Gdz, dlam, dnu = kkt.direction(f, rhs, g, want_z, refine)
    ds = -r.r_in - Gdz if Gdz is not None else -(rc + it.s * dlam) / it.lam
    return Direction(dz, ds, dlam, dnu)


def initial_point(kkt: KKTSystem) -> Iterate:
    """Solve the system with W = I (a least-squares fit of the constraints), then shift s, lam > 0."""
    P = kkt.prob
    B, m = P.h.shape
    f = kkt.factor(P.h.new_ones(B, m))
    for _ in range(3):
        # Where the system does not factor (free variables held only by equalities make it
        # nearly singular), raise that problem's regularization and factor again.
        failed = ~f.ok
        if not bool(failed.any()):
            break
        kkt.shift = torch.where(failed, (kkt.shift * 1e3).clamp(min=1e-10), kkt.shift)
        kkt.delta = torch.where(failed, kkt.delta * 1e3, kkt.delta)
        f = kkt.factor(P.h.new_ones(B, m))
    z, lam, nu = kkt.solve(f, -P.p, P.h, P.b)
    # Where that system could not be solved, start from the neutral point z = 0, s = lam = 1.
    ok = f.ok & torch.isfinite(z).all(-1) & torch.isfinite(lam).all(-1) & torch.isfinite(nu).all(-1)
    z = torch.where(ok.unsqueeze(-1), z, 0)
    nu = torch.where(ok.unsqueeze(-1), nu, 0)
    if m == 0:
        return Iterate.pack(z, lam, lam, nu)
    lam = torch.where(ok.unsqueeze(-1), lam, -1)
    s = -lam

    def shift(x: Tensor) -> Tensor:
        low = -x.amin(-1, keepdim=True)
        return torch.where(low >= 0, x + 1 + low, x)

    return Iterate.pack(z, shift(s), shift(lam), nu)


# --------------------------------------------------------------------------- driver
def _choose_form(P: ScaledProblem, settings: SolverSettings, rho: Tensor) -> tuple[str, Tensor | None, Tensor]:
    """The KKT form; for the dual form, the Cholesky factor of Q + r I its test computed and r.

    The dual form factors Q without regularization (r = 0) where it can: Q + rho I would bend
    every Newton direction by rho Q^-1, which costs iterations unless refinement undoes it.
    """
    none = rho
    if settings.kkt_form != "auto":
        return settings.kkt_form, None, rho
    n, m = P.Q.shape[-1], P.G.shape[1]
    if m == 0:
        return "primal", None, none
    cost_primal = m * n * n + n**3 / 3
    r = m + P.A.shape[1]
    cost_dual = r**3 / 3 + 2 * r * r  # factor, plus the per-iteration solves
    if cost_dual >= cost_primal:
        return "primal", None, none
    for q_rho in (torch.zeros_like(rho), rho):
        suitable, q_factor = dual_form_suitable(P.Q, q_rho)
        if bool(suitable.all()):
            return "dual", q_factor, q_rho
    return "primal", None, none


@torch.no_grad()  # the iterations are not differentiated: gradients come from qpbench.layer.QPFunction
def solve_batch(batch: QPBatch, settings: SolverSettings) -> QPSolution:
    t0 = time.perf_counter()
    settings = settings.resolved(batch.dtype)
    eps_abs, eps_rel = float(settings.eps_abs), float(settings.eps_rel)
    eps_inf = float(settings.eps_infeasible)
    P_full = equilibrate(batch, settings.scaling_iters)
    B = P_full.p.shape[0]
    m, k = P_full.h.shape[1], P_full.b.shape[1]
    dev, dt = P_full.p.device, P_full.p.dtype
    finfo = torch.finfo(dt)
    w_hi = WEIGHT_CAP[dt]
    w_lo = 1.0 / w_hi

    rho = torch.full((B,), float(settings.rho), dtype=dt, device=dev)
    delta = torch.full((B,), float(settings.delta), dtype=dt, device=dev)
    base_rho, base_delta = float(settings.rho), float(settings.delta)
    form, q_factor, q_rho = _choose_form(P_full, settings, rho)
    kkt = KKTSystem(P_full, form, rho, delta, q_factor, q_rho)
    kkt_full = kkt  # compaction makes new objects; this one keeps the whole batch for backward
    it = initial_point(kkt)
    n = it.n

    # Per-problem state is kept for the working set (compacted with it) and written back to the
    # whole batch (``flush``) when the working set shrinks and at the end.
    # Each problem's best iterate so far (lowest merit), scaled; this is also what is returned.
    # A problem is SOLVED at the first iterate with merit <= 1 and all earlier ones were above 1,
    # so for solved problems the best iterate IS the final one.
    best = Iterate(it.x.clone(), n, m)
    best_merit = torch.full((B,), float("inf"), dtype=dt, device=dev)
    st = torch.full((B,), int(Status.RUNNING), dtype=torch.int8, device=dev)
    iters_ws = torch.zeros(B, dtype=torch.int32, device=dev)
    bad_steps = torch.zeros(B, dtype=torch.int32, device=dev)
    best_full = best.x.clone()
    status = st.clone()
    iters = iters_ws.clone()
    idx = torch.arange(B, device=dev)  # working set -> batch index
    active = torch.ones(B, dtype=torch.bool, device=dev)
    last_dz = torch.zeros_like(it.z)
    bad: Tensor | None = None  # the last step's failed problems, read at the next synchronization
    # Regularization updates are no-ops until a step fails (or the initial point raised it), so
    # they start with the first failure.
    regularizing = bool(((kkt.shift > 0) | (kkt.delta > base_delta) | (kkt.rho > base_rho)).any())
    # With Q positive definite (the unregularized dual form) no problem is unbounded below.
    check_unbounded = not kkt.q_definite
    running = int(Status.RUNNING)
    n_iter_loop = 0

    def flush() -> None:
        best_full[idx] = best.x
        status[idx] = st
        iters[idx] = iters_ws

    for iteration in range(settings.max_iter + 1):
        P = kkt.prob
        r = residuals(kkt, it, last_dz if iteration > 0 and check_unbounded else None)
        res = original_residuals(P, it, r, with_scales=eps_rel > 0)
        ratios = tolerance_ratios(res, eps_abs, eps_rel)
        merit = torch.maximum(ratios["primal"], torch.maximum(ratios["dual"], ratios["gap"]))
        merit = torch.nan_to_num(merit, nan=float("inf"))
        new_status = torch.full_like(st, running).masked_fill(converged(ratios), int(Status.SOLVED))
        if iteration > 0:
            # A problem that is primal (dual) feasible within tolerance cannot be primal (dual)
            # infeasible: drifting multipliers of dependent constraints can mimic a certificate.
            still = new_status == running
            pinf = still & (ratios["primal"] > 1) & primal_infeasible(P, it, r, eps_inf)
            new_status = new_status.masked_fill(pinf, int(Status.PRIMAL_INFEASIBLE))
            if check_unbounded:
                still = new_status == running
                dinf = still & (ratios["dual"] > 1) & dual_infeasible(P, last_dz, r, eps_inf)
                new_status = new_status.masked_fill(dinf, int(Status.DUAL_INFEASIBLE))
        # Keep each problem's best iterate: near the end, directions built from extreme weights
        # can wreck an almost-converged iterate; a problem whose merit has grown far past its
        # best stops there and returns the best (status MAX_ITER-like: not converged).
        improved = merit < best_merit
        best_merit = torch.where(improved, merit, best_merit)
        best.x = torch.where(improved.unsqueeze(-1), it.x, best.x)
        diverged = (new_status == running) & (merit > _DIVERGENCE_FACTOR * best_merit)
        numerr = diverged | ((new_status == running) & (bad_steps >= _MAX_BAD_STEPS))
        new_status = new_status.masked_fill(numerr, int(Status.NUMERICAL_ERROR))
        if iteration == settings.max_iter:
            new_status = new_status.masked_fill(new_status == running, int(Status.MAX_ITER))
        finishing = active & (new_status != running)
        st = torch.where(finishing, new_status, st)
        active = active & ~finishing

        # The one host synchronization of the iteration: problems left, and failed steps.
        counts = torch.stack([active.sum(), bad.sum()]) if bad is not None else active.sum().unsqueeze(0)
        n_live, *n_bad = counts.tolist()
        if n_live == 0 or iteration == settings.max_iter:
            break
        regularizing = regularizing or bool(n_bad and n_bad[0])
        if regularizing and bad is not None:
            # Raised after a failure (factorization or non-finite step), decayed after successful
            # steps, so it does not distort the Newton direction for the rest of the solve.
            kkt.rho = torch.where(bad, (kkt.rho * 100).clamp(max=_RHO_MAX), (kkt.rho / 10).clamp(min=base_rho))
            kkt.delta = torch.where(
                bad, (kkt.delta * 100).clamp(max=_RHO_MAX), (kkt.delta / 10).clamp(min=base_delta)
            )
            shift_down = torch.where(kkt.shift > 10 * finfo.eps, kkt.shift / 10, torch.zeros_like(kkt.shift))
            kkt.shift = torch.where(bad, (kkt.shift * 100).clamp(min=10 * finfo.eps, max=_RHO_MAX), shift_down)
        if n_live < settings.compact_below * active.numel():
            live = torch.nonzero(active).squeeze(1)
            flush()
            kkt, it, r = kkt.select(live), it.select(live), r.select(live)
            best = best.select(live)
            idx, active, last_dz, best_merit = idx[live], active[live], last_dz[live], best_merit[live]
            st, iters_ws, bad_steps = st[live], iters_ws[live], bad_steps[live]
            P = kkt.prob

        # ---- Newton step (predictor-corrector) on the working set
        w = (it.lam / it.s).clamp(w_lo, w_hi) if m else it.s
        f = kkt.factor(w)
        for _ in range(settings.extra_factorizations):
            f = kkt.factor(w)
        rhs = kkt.newton_rhs(it.z, it.y, r.Cz, r.r_d, r.r_eq)
        refine = settings.refine_steps if kkt.needs_refinement else 0
        if m:
            s_lam = it.s_lam
            mu = (it.s * it.lam).sum(-1) / m
            # The dual form gets the predictor's multipliers without dz (one product fewer).
            aff = newton_direction(kkt, f, rhs, it, r, it.s * it.lam, refine, want_z=kkt.form == "primal")
            a_aff = max_step(s_lam, torch.cat([aff.s, aff.lam], dim=1))
            mu_aff = ((it.s + a_aff.unsqueeze(-1) * aff.s) * (it.lam + a_aff.unsqueeze(-1) * aff.lam)).sum(-1) / m
            sigma = (mu_aff / mu.clamp_min(finfo.tiny)).clamp(0, 1) ** 3
            rc = it.s * it.lam + aff.s * aff.lam - (sigma * mu).unsqueeze(-1)
            d = newton_direction(kkt, f, rhs, it, r, rc, refine, want_z=True)
            D = torch.cat([d.z, d.s, d.lam, d.nu], dim=1).nan_to_num_(nan=0.0, posinf=0.0, neginf=0.0)
            alpha = settings.step_fraction * max_step(s_lam, D[:, n : n + 2 * m])
            alpha = alpha.clamp(max=1.0)
        else:
            d = newton_direction(kkt, f, rhs, it, r, it.s, refine, want_z=True)
            D = torch.cat([d.z, d.s, d.lam, d.nu], dim=1).nan_to_num_(nan=0.0, posinf=0.0, neginf=0.0)
            alpha = torch.ones(it.x.shape[0], dtype=dt, device=dev)

        # A step is taken only if the factorization worked and the NEW iterate is finite (a finite
        # but huge direction can still overflow in float32); otherwise regularize more and retry.
        a = alpha.unsqueeze(-1)
        cand = it.x + a * D
        finite = f.ok & torch.isfinite(alpha) & torch.isfinite(cand).all(-1)
        take = active & finite
        bad = active & ~finite
        bad_steps = torch.where(bad, bad_steps + 1, torch.where(take, 0, bad_steps))
        keep = take.unsqueeze(-1)
        if check_unbounded:
            last_dz = torch.where(keep, a * D[:, :n], 0)
        it = Iterate(torch.where(keep, cand, it.x), n, m)
        if m:
            it.s_lam.clamp_(min=finfo.tiny)
        iters_ws = iters_ws + take.to(torch.int32)
        n_iter_loop += 1
        kkt.work.iterations += 1

    flush()
    best = Iterate(best_full, n, m)
    out = best
    # Unscale: z = D z_hat, s = s_hat / E, lam = E lam_hat / c, nu = F nu_hat / c.
    c = P_full.c.unsqueeze(-1)
    z = out.z * P_full.D
    s = out.s / P_full.E if m else out.s
    lam = out.lam * P_full.E / c if m else out.lam
    nu = out.nu * P_full.F / c if k else out.nu
    info = {
        "kkt_form": form,
        "iterations_loop": n_iter_loop,
        "solve_seconds": time.perf_counter() - t0,
        "settings": settings,
        # For the backward pass: the scaled problem, its KKT system (the dual form's factor of
        # Q + rho I is reused), and the scaled final iterate.
        "kkt": kkt_full,
        "scaled": P_full,
        "scaled_iterate": out,
    }
    return QPSolution(z=z, lam=lam, nu=nu, s=s, status=status, iterations=iters, info=info, work=kkt_full.work)
