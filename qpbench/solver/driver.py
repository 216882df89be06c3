"""The solver's driver: split the batch by KKT form, run the iteration on each part, unscale.

One iteration, on the working set of problems still running (each step is a function of its
own module):

1. residuals of the iterate and their measures in the original units  (``measures``)
2. proximal parameters and centres moved according to the last step's progress  (``regularization``)
3. status of each problem: solved, certified infeasible or unbounded, out of retries or iterations
4. predictor-corrector Newton step on the regularized system  (``newton``)
5. acceptance: problems whose factorization failed or whose new iterate is not finite keep
   their iterate and get larger proximal parameters for the next try.

Finished problems stop changing and, once enough have finished, are dropped from the working
set (compaction). The loop synchronizes with the host once per iteration (the count of problems
left). Every decision is per problem, so a problem's status never depends on its batch-mates.
"""

from __future__ import annotations

import abc
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, fields
from typing import Any, ClassVar, TypeVar

import torch
from torch import Tensor

from qpbench.problem import QPBatch
from qpbench.solver import memory
from qpbench.solver.certificates import DataNorms, primal_infeasible, unbounded
from qpbench.solver.compiled import loop_while, require_compiler, run_compiled, run_compiled_loop
from qpbench.solver.graphs import GraphIteration
from qpbench.solver.kkt import DualKKT, KKTSystem, ReducedKKT, dual_form_suitable
from qpbench.solver.kkt.dual import power_start
from qpbench.solver.linalg import cholesky
from qpbench.solver.measures import DirectionProducts, Measures, Residuals, measure, residuals
from qpbench.solver.newton import initial_point, predictor_corrector
from qpbench.solver.regularization import EARLY_ITERATIONS, Prox, after_failure, update
from qpbench.solver.result import FormGroup, QPSolution, SolveInfo, WorkCounts
from qpbench.solver.scaling import ScaledProblem, Scaling, equilibrate
from qpbench.solver.settings import SolverSettings
from qpbench.solver.state import Iterate, select_rows, tensors_of, with_tensors
from qpbench.solver.verify import confirmed
from qpbench.status import Status

RUNNING = int(Status.RUNNING)
T = TypeVar("T")


# --------------------------------------------------------------------------- eager or compiled
class Compute:
    """Calls the solver's fixed-shape steps: directly, or with ``compile`` through their
    torch.compile'd versions (``qpbench.solver.compiled``)."""

    def __init__(self, compiled: bool, work: WorkCounts, device: torch.device) -> None:
        self.compiled, self.work, self.device = compiled, work, device

    def __call__(self, fn: Callable[..., T], key: Hashable, *args: Any) -> T:
        """``fn(*args)``; ``key`` tells apart the calls whose work differs (see ``run_compiled``)."""
        return run_compiled(fn, key, self.work, self.device, *args) if self.compiled else fn(*args)


# --------------------------------------------------------------------------- set-up and form choice
@dataclass
class Setup:
    """The scaled problem and what the form choice and every form need of it."""

    P: ScaledProblem
    absent: Tensor  # (B, m) rows without bound
    norms: DataNorms  # the data's norms, for the certificates
    definite: Tensor  # (B,) bool: the scaled Q factored, so the problem is bounded below
    q_factor: Tensor | None  # (B, n, n) that factor (where it exists), if the dual form was tested
    dual_suitable: Tensor | None  # (B,) bool: the dual form applies (None: not tested)


def tests_dual_form(kkt_form: str, n: int, r: int) -> bool:
    """Whether the form choice tests the dual form on problems with n variables and r
    constraint rows: where it was asked for, or where its (r x r) factorization is cheaper than
    the reduced form's n x n one. The reduced form always applies."""
    if kkt_form == "reduced" or r == 0:
        return False
    return kkt_form == "dual" or r**3 / 3 + 2 * r * r < r * n * n + n**3 / 3


def set_up(batch: QPBatch, scaling_iters: int, scale_cost: bool, start_vector: Tensor | None) -> Setup:
    """Scale the problem and factor its Q, once: whether the factor exists says whether a
    problem may be unbounded; with ``start_vector`` (``power_start``), the factor also tests
    where the dual form applies, which then reuses it."""
    P, absent = equilibrate(batch, scaling_iters, scale_cost)
    norms = DataNorms.of(batch, absent)
    L, definite = cholesky(memory.copy_of(P.Q), overwrite=True)
    if start_vector is None:  # the factor is not kept: it is as large as Q
        return Setup(P, absent, norms, definite, None, None)
    # Where Q did not factor, L and the estimate made with it mean nothing; ``definite`` masks
    # both (every batched operation keeps its problems apart).
    return Setup(P, absent, norms, definite, L, dual_form_suitable(P.Q, L, definite, start_vector))


@dataclass
class FormPlan:
    """Which problems a form solves, and what it needs of the set-up for them."""

    form: type[KKTSystem]
    index: Tensor
    may_be_unbounded: Tensor  # (b,) bool: Q did not factor
    q_factor: Tensor | None = None  # the dual form's factor of Q


def plan_forms(setup: Setup, kkt_form: str) -> list[FormPlan]:
    """The dual form where the set-up found it suitable, the reduced form for the rest."""
    B = setup.definite.shape[0]
    suitable = setup.dual_suitable
    if suitable is None:
        return [FormPlan(ReducedKKT, torch.arange(B, device=setup.definite.device), ~setup.definite)]
    if kkt_form == "dual" and not bool(suitable.all()):
        bad = torch.nonzero(~suitable).squeeze(1).tolist()
        raise ValueError(
            f"kkt_form='dual' needs a positive definite, well-conditioned Q; problems {bad} have none "
            "(use kkt_form='auto' or 'reduced')"
        )
    L = setup.q_factor
    assert L is not None, "the set-up keeps Q's factor where it tests the dual form"
    dual = torch.nonzero(suitable).squeeze(1)
    rest = torch.nonzero(~suitable).squeeze(1)
    if dual.numel() == B:  # then no copy of the factors (the data's size)
        return [FormPlan(DualKKT, dual, ~setup.definite, L)]
    plans = [FormPlan(DualKKT, dual, ~setup.definite[dual], L[dual])] if dual.numel() else []
    return plans + ([FormPlan(ReducedKKT, rest, ~setup.definite[rest])] if rest.numel() else [])


def build(plan: FormPlan, P: ScaledProblem, work: WorkCounts) -> KKTSystem:
    if plan.form is DualKKT:
        assert plan.q_factor is not None
        return DualKKT(P, work, plan.q_factor)
    return ReducedKKT(P, work)


# --------------------------------------------------------------------------- per-problem state
@dataclass
class Track:
    """What the loop keeps per problem besides the iterate and the proximal state."""

    best: Tensor  # (B, N) best iterate so far (lowest merit): what an unsolved problem returns
    best_merit: Tensor  # (B,)
    status: Tensor  # (B,) int8
    iterations: Tensor  # (B,) int32: steps taken
    retries: Tensor  # (B,) int32: consecutive failed factorizations or steps
    step: Tensor  # (B, N) the last step taken (zero when the last one failed)
    moved: Tensor  # (B,) bool: the last step was taken
    mu_rate: Tensor  # (B,) relative decrease of mu in the last step
    may_be_unbounded: Tensor  # (B,) bool: Q did not factor, so the problem may be unbounded below
    origin: Tensor  # (B,) position of the problem in the whole batch
    unconfirmed: Tensor  # (B,) int32: iterates that converged in scaled units but not on the data
    confirmed: Tensor  # (B,) bool: SOLVED and checked on the original data
    progress_merit: Tensor  # (B,) the merit at the last significant improvement
    since_progress: Tensor  # (B,) int32: iterations since then

    @staticmethod
    def start(it: Iterate, started: Tensor, may_be_unbounded: Tensor, origin: Tensor) -> Track:
        B, dev = it.x.shape[0], it.x.device
        return Track(
            best=it.x.clone(),
            best_merit=torch.full((B,), float("inf"), dtype=it.x.dtype, device=dev),
            status=torch.full((B,), RUNNING, dtype=torch.int8, device=dev),
            iterations=torch.zeros(B, dtype=torch.int32, device=dev),
            retries=torch.where(started, 0, 1).to(torch.int32),
            step=torch.zeros_like(it.x),
            moved=torch.zeros(B, dtype=torch.bool, device=dev),
            mu_rate=torch.zeros(B, dtype=it.x.dtype, device=dev),
            may_be_unbounded=may_be_unbounded,
            origin=origin,
            unconfirmed=torch.zeros(B, dtype=torch.int32, device=dev),
            confirmed=torch.zeros(B, dtype=torch.bool, device=dev),
            progress_merit=torch.full((B,), float("inf"), dtype=it.x.dtype, device=dev),
            since_progress=torch.zeros(B, dtype=torch.int32, device=dev),
        )


@dataclass
class Working:
    """The working set: the KKT system and every per-problem state, compacted together."""

    kkt: KKTSystem
    it: Iterate
    prox: Prox
    track: Track
    norms: DataNorms
    rows: Tensor  # (B,) working-set row -> row of the group's full state

    def select(self, live: Tensor) -> Working:
        return Working(
            kkt=self.kkt.select(live),
            it=Iterate(self.it.x[live], self.it.n, self.it.m),
            prox=select_rows(self.prox, live),
            track=select_rows(self.track, live),
            norms=select_rows(self.norms, live),
            rows=self.rows[live],
        )


def scatter_rows(full: object, part: object, idx: Tensor) -> None:
    """Write the rows of ``part`` (a dataclass of tensors over the working set) into ``full``."""
    for f in fields(full):  # type: ignore[arg-type]
        value = getattr(full, f.name)
        if isinstance(value, Tensor):
            value[idx] = getattr(part, f.name)


@dataclass(frozen=True)
class Suspects:
    """Which certificate tests the iteration runs: problems whose progress stalled, decided at
    the previous iteration's synchronization (the tests cost an extra pass over the data)."""

    infeasible: bool = False
    unbounded: bool = False


# --------------------------------------------------------------------------- one iteration's steps
def candidates(ws: Working) -> Tensor:
    """(B, 2, N) certificate candidates: the last step and the displacement from the prox centre."""
    return torch.stack([ws.track.step, ws.prox.displacement(ws.it)], dim=1)


def classify(ws: Working, meas: Measures, products: DirectionProducts | None, settings: SolverSettings) -> Tensor:
    """(B,) the status each problem has at this iterate (RUNNING if none yet).

    Certificates are tested only where the residual they concern stopped improving (a stall
    counter of the proximal state) and the problem is not feasible within tolerance: a
    problem feasible within tolerance is not declared infeasible, whatever its step."""
    track, prox = ws.track, ws.prox
    status = torch.full_like(track.status, RUNNING).masked_fill(meas.converged, int(Status.SOLVED))
    eps = float(settings.eps_infeasible)
    if products is not None:
        d = Iterate(candidates(ws), ws.it.n, ws.it.m)
        P = ws.kkt.prob
        suspect = (status == RUNNING) & track.moved & (prox.dual_stalls > 0) & (meas.primal_ratio > 1)
        pinf = suspect & primal_infeasible(P, ws.norms, ws.it, d, products, eps)
        status = status.masked_fill(pinf, int(Status.PRIMAL_INFEASIBLE))
        if products.Qd is not None:
            suspect = (status == RUNNING) & track.moved & track.may_be_unbounded & (prox.primal_stalls > 0)
            dinf = suspect & (meas.dual_ratio > 1) & unbounded(P, ws.norms, ws.it, d, products, eps)
            status = status.masked_fill(dinf, int(Status.DUAL_INFEASIBLE))
    failing = (status == RUNNING) & (track.retries >= settings.max_factor_retries)
    return status.masked_fill(failing, int(Status.NUMERICAL_ERROR))


# Converged in scaled units this many times without the original data agreeing: the tolerance
# is below what rounding lets the data confirm (a gap of terms of 1e8 cannot be measured to 1e-9
# in float64, a float32 iterate cannot carry 1e-6 on larger data), so the problem stops as
# SOLVED_INACCURATE rather than run to max_iter.
_MAX_UNCONFIRMED = 5


def pending_confirmation(track: Track) -> Tensor:
    """(B,) the problems that converged in scaled units and are not confirmed yet."""
    return (track.status == int(Status.SOLVED)) & ~track.confirmed


def record_confirmation(track: Track, pending: Tensor, ok: Tensor) -> None:
    """The verdicts of a confirmation, (B,) masks: the problems checked and those the original
    data agree on. Confirmed ones stay SOLVED; the others go on iterating, and after
    ``_MAX_UNCONFIRMED`` refusals stop as SOLVED_INACCURATE."""
    track.confirmed = track.confirmed | (pending & ok)
    refused = pending & ~ok
    track.unconfirmed = track.unconfirmed + refused.to(torch.int32)
    verdict = torch.where(track.unconfirmed >= _MAX_UNCONFIRMED, int(Status.SOLVED_INACCURATE), RUNNING)
    track.status = torch.where(refused, verdict.to(track.status.dtype), track.status)


def confirm_pending(ws: Working, original: QPBatch, absent: Tensor, eps_abs: float, eps_rel: float) -> None:
    """Problems that converged in scaled units stay SOLVED only where the original data agree
    (``verify``, ``record_confirmation``), checked for those rows only. Costs a synchronization;
    only iterations in which some problem converged pay for the check itself."""
    track = ws.track
    pending = pending_confirmation(track)
    rows = torch.nonzero(pending).squeeze(1)
    if not rows.numel():
        return
    origin = track.origin[rows]
    z, _, lam, nu = unscale(select_rows(ws.kkt.prob.scaling, rows), ws.it.x[rows], ws.it.n, ws.it.m, absent[origin])
    ok = confirmed(original, origin, z, lam, nu, eps_abs, eps_rel)
    record_confirmation(track, pending, torch.zeros_like(pending).index_fill(0, rows[ok], True))


def confirm_all(
    ws: Working, original: QPBatch, absent: Tensor, eps_abs: float, eps_rel: float, due: bool | Tensor = True
) -> None:
    """``confirm_pending`` for the fixed-shape mode: the check made on every problem's iterate,
    its verdict recorded for the problems pending (if ``due``, a 0-d tensor inside a compiled
    loop); no data-dependent shape, so it compiles."""
    track = ws.track
    z, _, lam, nu = unscale(ws.kkt.prob.scaling, ws.it.x, ws.it.n, ws.it.m, absent[track.origin])
    ok = confirmed(original, track.origin, z, lam, nu, eps_abs, eps_rel)
    pending = pending_confirmation(track)
    record_confirmation(track, pending if due is True else pending & due, ok)


# A problem whose merit has not improved by a tenth for this many iterations stops
# (NUMERICAL_ERROR): it sits at the accuracy its dtype and conditioning allow (float32 asked for
# 1e-10, say). Certificates fire long before, when the problem is infeasible or unbounded.
_STALL_ITERATIONS = 30
_SIGNIFICANT = 0.9
# A problem that stops (stalled, or at max_iter) with its best iterate within this factor of the
# requested tolerance, in the solver's units, is SOLVED_INACCURATE rather than a numerical error:
# the answer is usable, only not to the accuracy asked (float32 asked for 1e-6 on data of size 5
# sits just above it). Like OSQP's and Clarabel's reduced-accuracy statuses; never a success.
_INACCURATE_MERIT = 100.0


def settle(ws: Working, meas: Measures, status: Tensor, last: bool | Tensor) -> None:
    """Record the best iterate and the statuses reached at this iterate."""
    track, x = ws.track, ws.it.x
    running = track.status == RUNNING
    improved = running & (meas.merit < track.best_merit)
    track.best_merit = torch.where(improved, meas.merit, track.best_merit)
    progress = meas.merit < _SIGNIFICANT * track.progress_merit
    track.progress_merit = torch.where(progress, meas.merit, track.progress_merit)
    track.since_progress = torch.where(progress, 0, track.since_progress + running.to(torch.int32))
    stalled = (status == RUNNING) & (track.since_progress >= _STALL_ITERATIONS)
    out_of_time = (status == RUNNING) & last
    status = status.masked_fill(stalled, int(Status.NUMERICAL_ERROR))
    status = status.masked_fill(out_of_time, int(Status.MAX_ITER))
    nearly = (stalled | out_of_time) & (track.best_merit <= _INACCURATE_MERIT)
    status = status.masked_fill(nearly, int(Status.SOLVED_INACCURATE))
    finishing = running & (status != RUNNING)
    # A converged or certified problem returns this iterate; one that stops short (stalled, out of
    # iterations, or failing its factorizations), its best.
    gives_up = stalled | out_of_time | (status == int(Status.NUMERICAL_ERROR))
    track.best = torch.where((improved | (finishing & ~gives_up)).unsqueeze(-1), x, track.best)
    track.status = torch.where(finishing, status, track.status)


def take_step(ws: Working, r: Residuals, settings: SolverSettings, host_checks: bool = False) -> None:
    """One predictor-corrector step; where it failed (factorization, non-finite iterate) the
    problem keeps its iterate and gets larger proximal parameters for its next try.
    ``host_checks``: skip the failure response when nothing failed (asks the host; the
    compacting mode, which synchronizes every iteration anyway)."""
    it, track = ws.it, ws.track
    active = track.status == RUNNING
    mu_before = it.mu()
    st = predictor_corrector(ws.kkt, it, ws.prox, r, settings.step_fraction, mu_before)
    taken = st.scaled(it.n, it.m)
    cand = it.x + taken
    take = active & st.ok & torch.isfinite(cand).all(-1)
    failed = active & ~take
    if not host_checks or bool(failed.any()):
        ws.prox = after_failure(ws.prox, failed)
    keep = take.unsqueeze(-1)
    ws.it = it = Iterate(torch.where(keep, cand, it.x), it.n, it.m)
    tiny = torch.finfo(it.x.dtype).tiny
    if it.m:
        it.s_lam.clamp_(min=tiny)
    track.mu_rate = ((mu_before - it.mu()) / mu_before.clamp_min(tiny)).clamp_min(0)
    track.step = torch.where(keep, taken, 0.0)
    track.moved = take
    track.retries = torch.where(failed, track.retries + 1, torch.where(take, 0, track.retries))
    track.iterations = track.iterations + take.to(torch.int32)
    ws.kkt.work.add(iterations=1)


# --------------------------------------------------------------------------- the loop
@dataclass
class Outcome:
    x: Tensor  # (b, N) returned scaled iterate
    status: Tensor
    iterations: Tensor
    rho: Tensor
    delta: Tensor
    loops: int


@dataclass
class Group:
    """One form's problems, ready to iterate."""

    kkt: KKTSystem
    norms: DataNorms
    origin: Tensor  # (b,) positions of the problems in the whole batch
    may_be_unbounded: Tensor  # (b,) bool: Q did not factor (``Setup.definite``)


def fixed_suspects(group: Group) -> Suspects:
    """The fixed-shape modes test certificates every iteration (deciding per iteration would take
    a synchronization); the unboundedness test only where some problem may be unbounded."""
    return Suspects(infeasible=True, unbounded=bool(group.may_be_unbounded.any()))


def start(group: Group, settings: SolverSettings) -> Working:
    """The initial working set: initial point, proximal state, per-problem tracking."""
    kkt = group.kkt
    P = kkt.prob
    B = P.batch_size
    primal_prox = not isinstance(kkt, DualKKT)
    prox = Prox.initial(Iterate(P.p.new_zeros(B, 0), 0, 0), settings, primal_prox)  # parameters only
    it, started = initial_point(kkt, prox)
    prox = after_failure(Prox.initial(it, settings, primal_prox), ~started)
    track = Track.start(it, started, group.may_be_unbounded, group.origin)
    return Working(kkt, it, prox, track, group.norms, torch.arange(B, device=P.p.device))


@dataclass
class Context:
    """What the loop needs besides the working set."""

    settings: SolverSettings
    original: QPBatch  # the whole batch, for the confirmation on the original data
    absent: Tensor  # (B, m) rows without bound, of the whole batch
    eps_abs: float
    eps_rel: float


@dataclass(frozen=True)
class Phase:
    """What the steps need of the iteration's number. In a compiled iteration ``early`` and
    ``last`` are 0-d tensors, so that one compiled function serves every later iteration."""

    first: bool  # no step taken yet: nothing to update the proximal state from
    early: bool | Tensor  # within the update's early phase (regularization.EARLY_ITERATIONS)
    last: bool | Tensor  # the iteration max_iter: problems still running stop there

    @staticmethod
    def at(iteration: int | Tensor, max_iter: int, first: bool) -> Phase:
        return Phase(first, iteration < EARLY_ITERATIONS, iteration == max_iter)


def observe(ws: Working, phase: Phase, suspects: Suspects, ctx: Context) -> Residuals:
    """Steps 1 to 3 of an iteration: residuals and measures, proximal update, statuses (settled
    into the track, converged problems SOLVED pending confirmation)."""
    dirs = candidates(ws) if suspects.infeasible or suspects.unbounded else None
    r, products = residuals(ws.kkt, ws.it, dirs, suspects.unbounded)
    meas = measure(ws.kkt.prob, ws.it, r, ctx.eps_abs, ctx.eps_rel)
    if not phase.first:
        ws.prox = update(ws.prox, ws.kkt.prob, ws.it, meas, ws.track.mu_rate, ws.track.moved, phase.early)
    settle(ws, meas, classify(ws, meas, products, ctx.settings), last=phase.last)
    return r


class IterationMode(abc.ABC):
    """How the loop treats finished problems and the host: the two variants share every step."""

    name: ClassVar[str]

    @abc.abstractmethod
    def run(self, group: Group, ctx: Context, compute: Compute) -> tuple[Working, int]:
        """Start and iterate until every problem has a status; returns the final working set
        and the number of steps taken."""

    @staticmethod
    def started(group: Group, ctx: Context, compute: Compute) -> Working:
        return compute(start, shape_key(group.kkt), group, ctx.settings)


class Compacting(IterationMode):
    """Finished problems leave the working set once enough have finished, so they stop costing;
    the host is asked once per iteration (problems left, certificate tests due). Best on CPU."""

    name = "compact"

    def run(self, group: Group, ctx: Context, compute: Compute) -> tuple[Working, int]:
        settings = ctx.settings
        ws = self.started(group, ctx, compute)
        everyone = ws.rows.clone()
        self.full_track, self.full_prox = select_rows(ws.track, everyone), select_rows(ws.prox, everyone)
        suspects = Suspects()
        loops = 0
        for iteration in range(settings.max_iter + 1):
            r = observe(ws, Phase.at(iteration, settings.max_iter, first=iteration == 0), suspects, ctx)
            confirm_pending(ws, ctx.original, ctx.absent, ctx.eps_abs, ctx.eps_rel)
            active = ws.track.status == RUNNING
            # The iteration's one synchronization: problems left, and which tests are due.
            stalled_primal = active & (ws.prox.dual_stalls > 0)
            stalled_dual = active & (ws.prox.primal_stalls > 0) & ws.track.may_be_unbounded
            n_live, n_pinf, n_dinf = torch.stack([active.sum(), stalled_primal.sum(), stalled_dual.sum()]).tolist()
            suspects = Suspects(infeasible=n_pinf > 0, unbounded=n_dinf > 0)
            if n_live == 0 or iteration == settings.max_iter:
                break
            if n_live < settings.compact_below * active.numel():
                self.write_back(ws)
                live = torch.nonzero(active).squeeze(1)
                r = select_rows(r, live)
                ws = ws.select(live)
            take_step(ws, r, settings, host_checks=True)
            loops += 1
        self.write_back(ws)
        return Working(ws.kkt, ws.it, self.full_prox, self.full_track, ws.norms, everyone), loops

    def write_back(self, ws: Working) -> None:
        scatter_rows(self.full_track, ws.track, ws.rows)
        scatter_rows(self.full_prox, ws.prox, ws.rows)


def fixed_iteration(ws: Working, first: bool, iteration: int | Tensor, suspects: Suspects, ctx: Context) -> None:
    """One whole iteration of the fixed-shape mode (``iteration`` a 0-d tensor when compiled)."""
    take_step(ws, observe(ws, Phase.at(iteration, ctx.settings.max_iter, first), suspects, ctx), ctx.settings)


class Steps:
    """How the fixed-shape mode runs its iterations: eagerly (this class) or replayed as a CUDA
    graph (compiled, the mode is ``CompiledLoop``)."""

    def __init__(self, ws: Working, suspects: Suspects, ctx: Context) -> None:
        self.ws, self.suspects, self.ctx = ws, suspects, ctx

    def __call__(self, iteration: int) -> None:
        fixed_iteration(self.ws, iteration == 0, iteration, self.suspects, self.ctx)

    def confirm(self) -> None:
        ctx = self.ctx
        confirm_all(self.ws, ctx.original, ctx.absent, ctx.eps_abs, ctx.eps_rel)

    def finished(self) -> bool:
        """The end of a block, its host synchronization: confirm the problems that converged
        (on the original data), and say whether every problem has a status."""
        track = self.ws.track
        pending = pending_confirmation(track)
        n_pending, n_running = torch.stack([pending.sum(), (track.status == RUNNING).sum()]).tolist()
        if not n_pending:
            return n_running == 0
        self.confirm()
        self.after_host_code()
        return not bool((self.ws.track.status == RUNNING).any())

    def after_host_code(self) -> None:
        """Code outside the steps (the confirmation) changed the state."""


class GraphSteps(Steps):
    """The iterations from EARLY_ITERATIONS on (the update's early phase and the last iteration
    differ, the rest alike) replayed as one captured CUDA graph (``graphs``)."""

    captured: GraphIteration | None = None

    def __call__(self, iteration: int) -> None:
        if iteration < EARLY_ITERATIONS:
            super().__call__(iteration)
        elif self.captured is None:
            eager = super().__call__
            self.captured = GraphIteration(self.ws, lambda: eager(iteration), self.ws.kkt.work)
        else:
            self.captured.replay()

    def after_host_code(self) -> None:
        if self.captured is not None:
            self.captured.buffers.absorb(self.ws)


class FixedShape(IterationMode):
    """Every problem stays in the working set (finished ones are masked), and the host is asked
    only every ``check_every`` iterations, where converged problems are confirmed: no
    data-dependent shape and no synchronization inside a block, which is what CUDA graphs can
    capture and torch.compile can compile (``steps``: eager, or on CUDA with ``cuda_graphs``
    replayed from the sixth iteration on; compiled, the same iterations are ``CompiledLoop``).
    Best on a GPU, where a synchronization costs more than the masked work."""

    name = "fixed"

    def __init__(self, steps: type[Steps] = Steps) -> None:
        self.steps = steps

    def run(self, group: Group, ctx: Context, compute: Compute) -> tuple[Working, int]:
        settings = ctx.settings
        ws = self.started(group, ctx, compute)
        suspects = fixed_suspects(group)
        step = self.steps(ws, suspects, ctx)
        assert settings.check_every is not None, "settings are resolved"
        for iteration in range(settings.max_iter):
            step(iteration)
            if (iteration + 1) % settings.check_every == 0 and step.finished():
                return ws, iteration + 1
        observe(ws, Phase.at(settings.max_iter, settings.max_iter, first=False), suspects, ctx)
        return ws, settings.max_iter


# The state an iteration changes, as the flat tensors a compiled loop carries: [x, prox, track].
LoopState = tuple[Tensor, tuple[Tensor, ...], tuple[Tensor, ...]]


def loop_state(ws: Working) -> LoopState:
    return ws.it.x, tensors_of(ws.prox), tensors_of(ws.track)


def with_loop_state(ws: Working, state: LoopState) -> Working:
    """The working set ``ws`` at ``state`` (new state objects; ``ws`` itself is not changed)."""
    x, prox, track = state
    return Working(ws.kkt, Iterate(x, ws.it.n, ws.it.m), with_tensors(ws.prox, prox), with_tensors(ws.track, track),
                   ws.norms, ws.rows)


def unaliased(new: LoopState, old: LoopState) -> LoopState:
    """``new`` with a copy of every tensor that is still the one in ``old`` (a loop's body must
    not return its inputs)."""
    def fresh(a: Tensor, b: Tensor) -> Tensor:
        return a.clone() if a is b else a

    return (fresh(new[0], old[0]), tuple(map(fresh, new[1], old[1])), tuple(map(fresh, new[2], old[2])))


def iterate(ws: Working, suspects: Suspects, ctx: Context) -> tuple[Tensor, LoopState]:
    """The fixed-shape mode's iterations 0 to max_iter - 1, each followed by the confirmation
    when a check is due (every ``check_every`` iterations); all but the first as one
    ``loop_while``, which stops at a check where every problem has a status. Returns the (0-d)
    number of iterations taken and the final state. ``ws`` is not changed: torch.compile did not
    replay the reassignment of a state object that the same function had also changed."""
    max_iter, every = ctx.settings.max_iter, ctx.settings.check_every
    assert every is not None, "settings are resolved"
    first = with_loop_state(ws, loop_state(ws))
    fixed_iteration(first, True, 0, suspects, ctx)  # nothing yet to update the prox from
    if every == 1:
        confirm_all(first, ctx.original, ctx.absent, ctx.eps_abs, ctx.eps_rel)

    def go_on(i: Tensor, state: LoopState) -> Tensor:
        running = (with_loop_state(ws, state).track.status == RUNNING).any()
        return (i < max_iter) & ((i % every != 0) | running)

    def iteration(i: Tensor, state: LoopState) -> tuple[Tensor, LoopState]:
        w = with_loop_state(ws, state)
        fixed_iteration(w, False, i, suspects, ctx)
        confirm_all(w, ctx.original, ctx.absent, ctx.eps_abs, ctx.eps_rel, due=(i + 1) % every == 0)
        return i + 1, unaliased(loop_state(w), state)

    one = torch.ones((), dtype=torch.int64, device=ws.it.x.device)
    return loop_while(go_on, iteration, one, loop_state(first), ws.kkt.work)


def start_and_iterate(group: Group, suspects: Suspects, ctx: Context) -> tuple[Tensor, Working]:
    """``start``, then ``iterate``: the (0-d) number of iterations taken and the final working set."""
    ws = start(group, ctx.settings)
    count, state = iterate(ws, suspects, ctx)
    return count, with_loop_state(ws, state)


class CompiledLoop(IterationMode):
    """The fixed-shape mode compiled (``compile=True``): every iteration, with the confirmations,
    in one compiled call with the start (``start_and_iterate``), the later ones as one compiled
    loop. The host is asked once, when the loop ends: the per-iteration call, guard check and
    round trip of the state through Python are what decide small batches."""

    name = "fixed"

    def run(self, group: Group, ctx: Context, compute: Compute) -> tuple[Working, int]:
        settings = ctx.settings
        assert settings.check_every is not None, "settings are resolved"
        suspects = fixed_suspects(group)
        kkt = group.kkt
        key = (*shape_key(kkt), suspects)
        loops, ws = run_compiled_loop(start_and_iterate, key, 1, kkt.work, kkt.prob.p.device, group, suspects, ctx)
        # As in FixedShape: the last iteration's observation, unless a check there found every
        # problem finished.
        at_check = settings.max_iter % settings.check_every == 0
        if loops == settings.max_iter and not (at_check and not bool((ws.track.status == RUNNING).any())):
            observe(ws, Phase.at(settings.max_iter, settings.max_iter, first=False), suspects, ctx)
        return ws, loops


MODES: dict[str, type[IterationMode]] = {m.name: m for m in (Compacting, FixedShape)}


def choose_mode(settings: SolverSettings, device: torch.device) -> IterationMode:
    """``auto``: compacting on the CPU (skipping finished problems saves work, a synchronization
    is free), fixed-shape elsewhere (a synchronization stalls the device) and when compiled."""
    compact = device.type == "cpu" and not settings.compile
    name = settings.mode if settings.mode != "auto" else ("compact" if compact else "fixed")
    if name == "fixed":
        if settings.compile:
            return CompiledLoop()
        return FixedShape(GraphSteps if settings.cuda_graphs and device.type == "cuda" else Steps)
    return Compacting()


def shape_key(kkt: KKTSystem) -> tuple[object, ...]:
    """What a compiled step's work depends on besides its phase: the form and the shapes."""
    return (type(kkt), kkt.batch_size, kkt.n, kkt.m, kkt.k, kkt.prob.p.dtype, kkt.prob.p.device)


def run_form(group: Group, mode: IterationMode, ctx: Context, compute: Compute) -> Outcome:
    """Iterate on one form's group until every problem has a status (see the module docstring)."""
    ws, loops = mode.run(group, ctx, compute)
    # A SOLVED problem of a last block may not be confirmed yet.
    confirm_pending(ws, ctx.original, ctx.absent, ctx.eps_abs, ctx.eps_rel)
    status = ws.track.status.masked_fill(ws.track.status == RUNNING, int(Status.MAX_ITER))
    return Outcome(ws.track.best, status, ws.track.iterations, ws.prox.rho, ws.prox.delta, loops)


# --------------------------------------------------------------------------- the whole batch
def unscale(P: Scaling, x: Tensor, n: int, m: int, absent: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(z, s, lam, nu) in the original units; rows without bound get lam = 0, s = +inf."""
    it = Iterate(x, n, m)
    c = P.c.unsqueeze(-1)
    z = it.z * P.D
    s = (it.s / P.E).masked_fill(absent, float("inf"))
    lam = (it.lam * P.E / c).masked_fill(absent, 0.0)
    nu = it.nu * P.F / c
    return z, s, lam, nu


def joined(plans: list[FormPlan], outcomes: list[Outcome]) -> tuple[Tensor, Tensor, Tensor]:
    """The groups' returned iterates, statuses and iteration counts, in the batch's order."""
    if len(outcomes) == 1:  # one group is the whole batch, in order: nothing to scatter
        return outcomes[0].x, outcomes[0].status, outcomes[0].iterations
    B = sum(out.x.shape[0] for out in outcomes)
    first = outcomes[0]
    x = first.x.new_zeros(B, first.x.shape[1])
    status, iterations = first.status.new_empty(B), first.iterations.new_empty(B)
    for plan, out in zip(plans, outcomes, strict=True):
        x[plan.index], status[plan.index], iterations[plan.index] = out.x, out.status, out.iterations
    return x, status, iterations


@torch.no_grad()  # the iterations are not differentiated: gradients come from qpbench.layer.QPFunction
def solve_batch(batch: QPBatch, settings: SolverSettings) -> QPSolution:
    t0 = time.perf_counter()
    settings = settings.resolved(batch.dtype, batch.device)
    if settings.compile:
        require_compiler(batch.device)
    work = WorkCounts()
    compute = Compute(settings.compile, work, batch.device)
    B, n, m, k = batch.batch_size, batch.n, batch.m, batch.k
    test_dual = tests_dual_form(settings.kkt_form, n, m + k)
    start_vector = power_start(B, n, batch.p) if test_dual else None
    setup = compute(set_up, (B, n, m, k, test_dual), batch, settings.scaling_iters, settings.scale_cost, start_vector)
    P, absent, norms = setup.P, setup.absent, setup.norms
    groups: list[FormGroup] = []
    outcomes: list[Outcome] = []
    loops = 0
    mode = choose_mode(settings, P.p.device)
    ctx = Context(settings, batch, absent, float(settings.eps_abs), float(settings.eps_rel))
    plans = plan_forms(setup, settings.kkt_form)
    for plan in plans:
        # One group is the whole batch: nothing to select.
        part, part_norms = (P, norms) if len(plans) == 1 else (P.select(plan.index), select_rows(norms, plan.index))
        kkt = build(plan, part, work)
        out = run_form(Group(kkt, part_norms, plan.index, plan.may_be_unbounded), mode, ctx, compute)
        outcomes.append(out)
        groups.append(FormGroup(kkt.name, plan.index, kkt, out.rho, out.delta))
        loops += out.loops
    x, status, iterations = joined(plans, outcomes)
    z, s, lam, nu = unscale(P.scaling, x, n, m, absent)
    info = SolveInfo(
        settings=settings,
        mode=mode.name,
        seconds=time.perf_counter() - t0,
        iterations_loop=loops,
        scaled=P,
        scaled_iterate=x,
        absent=absent,
        groups=groups,
    )
    return QPSolution(z=z, lam=lam, nu=nu, s=s, status=status, iterations=iterations, info=info, work=work)
