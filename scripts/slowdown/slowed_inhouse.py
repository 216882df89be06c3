"""A wrapping adapter that makes the in-house solver slower by a controlled amount, from outside it.

Used by ``scripts/regression_trials.py`` to show that the regression gate catches a slowdown.
``SlowedInHouseAdapter.solve`` runs the real in-house adapter's solve, then adds work, as set by
``QPBENCH_TRIAL_SLOWDOWN=KIND:AMOUNT``:

* ``resolve:N`` solves the same batch N more times (whole re-solves, then one stopped after the
  fractional share of the real solve's iterations): real solver work. At the ``ci`` suite's
  sizes most of a solve is fixed per-call cost, so even a re-solve capped at one iteration costs
  about 0.3 of a solve: ``resolve:1`` gives about 2x, but nothing near 1.25x can be made this way.
* ``burn:F`` keeps the CPU busy with small torch products for F times the real solve's own
  measured time: a slowdown of 1 + F, also under load (the solve's time already carries the load).

The answer returned is the real solve's (work counts included), so only the clock can tell. The
trial script measures and reports the factor each setting actually produces.

It is named ``inhouse`` (``sitecustomize.py`` beside it swaps it in for the adapter class the
registry hands out), so its rows line up with the baseline's in-house rows.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from typing import Any

import torch

from qpbench.adapters.base import SolveOutput
from qpbench.adapters.inhouse import InHouseAdapter

SLOWDOWN_VARIABLE = "QPBENCH_TRIAL_SLOWDOWN"
KINDS = ("resolve", "burn")


@dataclass(frozen=True)
class Slowdown:
    kind: str  # "resolve" or "burn"
    amount: float

    @classmethod
    def parse(cls, text: str) -> Slowdown:
        kind, _, amount = text.strip().partition(":")
        try:
            value = float(amount)
        except ValueError:
            value = math.nan
        if kind not in KINDS or not value >= 0:
            raise ValueError(f"{SLOWDOWN_VARIABLE} must be resolve:N or burn:F with a number >= 0, got {text!r}")
        return cls(kind, value)

    @classmethod
    def from_environment(cls) -> Slowdown | None:
        text = os.environ.get(SLOWDOWN_VARIABLE, "").strip()
        return cls.parse(text) if text else None


class SlowedInHouseAdapter(InHouseAdapter):
    """The in-house adapter plus the extra work of a :class:`Slowdown` (see the module docstring)."""

    def __init__(self, slowdown: Slowdown | None = None) -> None:
        self.slowdown = slowdown or Slowdown.from_environment() or Slowdown("burn", 0.0)

    def solve(self, prepared: Any) -> SolveOutput:
        start = time.perf_counter()
        output = super().solve(prepared)
        seconds = time.perf_counter() - start
        if self.slowdown.kind == "resolve":
            self._resolve(prepared, output)
        else:
            burn(self.slowdown.amount * seconds)
        return output

    def _resolve(self, prepared: Any, output: SolveOutput) -> None:
        from qpbench.solver import solve

        whole, part = divmod(self.slowdown.amount, 1.0)
        for _ in range(int(whole)):
            solve(prepared.batch, prepared.settings)
        iterations = int(output.iterations.max()) if output.iterations is not None and output.iterations.size else 0
        capped = math.ceil(part * iterations) if part > 1e-9 else 0
        if capped:
            solve(prepared.batch, prepared.settings.with_updates(max_iter=capped))


def burn(seconds: float) -> None:
    """Busy the CPU with small batched products (the kind of work a solve does) for ``seconds``."""
    if seconds <= 0:
        return
    deadline = time.perf_counter() + seconds
    x = torch.full((4, 16, 16), 0.01, dtype=torch.float64)
    while time.perf_counter() < deadline:
        x = torch.bmm(x, x).clamp_(-1.0, 1.0)
