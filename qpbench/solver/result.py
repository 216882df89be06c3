"""What the in-house solver returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from qpbench.status import Status


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

    @property
    def solved(self) -> Tensor:
        return self.status == int(Status.SOLVED)

    def status_counts(self) -> dict[str, int]:
        codes = torch.bincount(self.status.to(torch.int64).cpu(), minlength=len(Status))
        return {s.label: int(codes[s]) for s in Status if s is not Status.RUNNING and codes[s]}

    def statuses(self) -> list[Status]:
        return [Status(int(c)) for c in self.status.cpu()]
