"""Per-problem solve status shared by the in-house solver and every adapter."""

from __future__ import annotations

from enum import IntEnum


class Status(IntEnum):
    """Outcome of one problem in a batch.

    Stored as small integers so a whole batch's statuses fit in one tensor (new members get new
    numbers, so stored results keep their meaning). ``RUNNING`` only appears inside the solver
    while iterating.
    """

    SOLVED = 0
    PRIMAL_INFEASIBLE = 1
    DUAL_INFEASIBLE = 2  # unbounded below
    MAX_ITER = 3
    NUMERICAL_ERROR = 4
    TIME_LIMIT = 5
    UNKNOWN = 6  # the solver returned something we could not classify
    RUNNING = 7
    # Converged by the solver's own measure, but the requested accuracy is not confirmed on the
    # original data (OSQP's "solved inaccurate", Clarabel's "almost solved"): never a success.
    SOLVED_INACCURATE = 8

    @property
    def label(self) -> str:
        return self.name.lower()
