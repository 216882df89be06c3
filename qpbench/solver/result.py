"""What the in-house solver returns."""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from qpbench.status import Status

if TYPE_CHECKING:
    from qpbench.solver.kkt.base import KKTSystem
    from qpbench.solver.scaling import ScaledProblem
    from qpbench.solver.settings import SolverSettings


@dataclass
class WorkCounts:
    """Work of one solve that does not depend on machine load, for regression checks beside the
    clock: each count is summed over the problems of the working set at the time (a factorization
    of a batch of 8 matrices counts 8). A change that adds work moves these exactly."""

    iterations: int = 0  # iterations of the batch loop
    factorizations: int = 0  # KKT matrix factorizations
    solves: int = 0  # solves with a factorization (Newton directions, refinement passes)
    products: int = 0  # passes over the problem data (matrix-vector products of Q, G, A)

    def add(self, iterations: int = 0, factorizations: int = 0, solves: int = 0, products: int = 0) -> None:
        """Count work. Skipped while torch.compile traces: a compiled iteration must not bake the
        counters' current values in (it would recompile on every call); the compiled mode adds
        each call's share, counted once eagerly, instead."""
        if torch.compiler.is_compiling():
            return
        self.iterations += iterations
        self.factorizations += factorizations
        self.solves += solves
        self.products += products

    def snapshot(self) -> WorkCounts:
        return replace(self)

    def since(self, before: WorkCounts) -> WorkCounts:
        """The work counted after ``before`` (a snapshot of this one)."""
        return WorkCounts(*(getattr(self, f.name) - getattr(before, f.name) for f in fields(self)))

    def times(self, k: int) -> WorkCounts:
        return WorkCounts(*(getattr(self, f.name) * k for f in fields(self)))

    def divided(self, k: int) -> WorkCounts:
        """The share of one of ``k`` passes of equal work."""
        counts = [getattr(self, f.name) for f in fields(self)]
        if any(c % k for c in counts):
            raise ValueError(f"work {self} is not {k} passes of equal work")
        return WorkCounts(*(c // k for c in counts))

    def add_counts(self, other: WorkCounts) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    def reset_to(self, snapshot: WorkCounts) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(snapshot, f.name))


@dataclass
class FormGroup:
    """The problems of the batch that one KKT form solved, with what the backward pass needs:
    that form's system over the group (its one-time work, such as the dual form's factor of Q,
    is reused) and the final proximal parameters."""

    form: str  # the KKT form's name: "reduced" or "dual"
    index: Tensor  # (b,) positions of the group's problems in the batch
    kkt: KKTSystem
    rho: Tensor  # (b,)
    delta: Tensor  # (b,)


@dataclass
class SolveInfo:
    """How the batch was solved. ``scaled`` and ``scaled_iterate`` (the final iterate, packed
    [z, s, lam, nu] in scaled units) and ``groups`` are the state the backward pass starts from."""

    settings: SolverSettings
    mode: str  # the iteration mode: "compact" or "fixed" (see SolverSettings.mode)
    seconds: float
    iterations_loop: int  # iterations of the batch loops (summed over the form groups)
    scaled: ScaledProblem
    scaled_iterate: Tensor
    absent: Tensor  # (B, m) rows without bound (h = +inf)
    groups: list[FormGroup]

    @property
    def kkt_form(self) -> str:
        """The form that solved the batch, or "mixed" when problems were split between forms."""
        names = {g.form for g in self.groups}
        return names.pop() if len(names) == 1 else "mixed"

    def form_of(self) -> list[str]:
        """The KKT form of each problem of the batch."""
        out = [""] * int(self.scaled.batch_size)
        for g in self.groups:
            for i in g.index.tolist():
                out[i] = g.form
        return out


@dataclass
class QPSolution:
    """Primal z (B, n), inequality multipliers lam (B, m) >= 0, equality multipliers nu (B, k),
    slacks s (B, m), per-problem ``status`` (B,) of :class:`Status` codes and ``iterations`` (B,).

    Problems that did not reach ``SOLVED`` carry their last finite iterate, never NaN.
    """

    z: Tensor
    lam: Tensor
    nu: Tensor
    s: Tensor
    status: Tensor
    iterations: Tensor
    info: SolveInfo
    work: WorkCounts = field(default_factory=WorkCounts)

    @property
    def solved(self) -> Tensor:
        return self.status == int(Status.SOLVED)

    def status_counts(self) -> dict[str, int]:
        codes = torch.bincount(self.status.to(torch.int64).cpu(), minlength=len(Status))
        return {s.label: int(codes[s]) for s in Status if s is not Status.RUNNING and codes[s]}

    def statuses(self) -> list[Status]:
        return [Status(int(c)) for c in self.status.cpu()]
