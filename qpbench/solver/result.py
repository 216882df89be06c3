"""What the in-house solver returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from qpbench.status import Status


@dataclass
class WorkCounts:
    """Work of one solve that does not depend on machine load, for regression checks beside the
    clock: each count is summed over the problems of the working set at the time (a factorization
    of a batch of 8 matrices counts 8). A change that adds work moves these exactly."""

    iterations: int = 0  # iterations of the batch loop
    factorizations: int = 0  # KKT matrix factorizations
    solves: int = 0  # solves with a factorization (Newton directions, refinement passes)
    products: int = 0  # passes over the problem data (matrix-vector products of Q, G, A)


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
    info: dict[str, Any] = field(default_factory=dict)
    work: WorkCounts = field(default_factory=WorkCounts)

    @property
    def solved(self) -> Tensor:
        return self.status == int(Status.SOLVED)

    def status_counts(self) -> dict[str, int]:
        codes = torch.bincount(self.status.to(torch.int64).cpu(), minlength=len(Status))
        return {s.label: int(codes[s]) for s in Status if s is not Status.RUNNING and codes[s]}

    def statuses(self) -> list[Status]:
        return [Status(int(c)) for c in self.status.cpu()]
