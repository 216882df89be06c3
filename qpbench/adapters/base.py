"""The one interface every solver is reached through (docs/adding-a-solver.md, "The interface").

An adapter is used in two timed steps so that setup cost (CVXPY canonicalization, OSQP setup,
layer construction) is never mixed into solve time:

    prepared = adapter.setup(batch, tolerance, time_limit)   # timed as setup
    result = adapter.solve(prepared)                          # timed as solve

``solve`` may be called several times on one ``prepared`` object (timing repeats), and must give
the same answer each time.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import numpy as np
import torch
from torch import Tensor

from qpbench.problem import QPBatch


class Tolerance(str, Enum):  # noqa: UP042 - StrEnum would change str(level), which adapters format
    """Common accuracy levels (qpbenchmark's low / mid / high), mapped per solver."""

    LOW = "low"
    MID = "mid"
    HIGH = "high"

    @property
    def eps(self) -> float:
        return {"low": 1e-3, "mid": 1e-6, "high": 1e-9}[self.value]

    @classmethod
    def parse(cls, value: str | Tolerance) -> Tolerance:
        try:
            return cls(value)
        except ValueError:
            raise ValueError(f"tolerance must be one of low, mid, high; got {value!r}") from None


@dataclass(frozen=True)
class Capabilities:
    """What an adapter can take. The runner records 'unsupported' from these, never a crash."""

    batched: bool  # solves the whole batch in one call (False: loops over problems)
    differentiable: bool  # gradients through torch autograd
    devices: tuple[str, ...] = ("cpu",)
    dtypes: tuple[torch.dtype, ...] = (torch.float64,)
    needs_pd_q: bool = False  # Q must be positive definite (quadprog, qpth)
    equalities: bool = True
    needs_inequalities: bool = False  # qpth cannot take m = 0
    needs_constraints: bool = False  # at least one row, G or A (SCS, proxsuite's layer)
    lp: bool = True  # Q = 0 allowed
    shared_params: bool = True  # takes unbatched (shared) tensors natively


@dataclass
class SolveOutput:
    """What one ``solve`` call returns; tensors are (B, ·) float64 on the CPU or the batch device."""

    z: Tensor
    status: np.ndarray  # (B,) of Status values
    lam: Tensor | None = None
    nu: Tensor | None = None
    iterations: np.ndarray | None = None  # (B,) where the solver reports them
    info: dict[str, Any] = field(default_factory=dict)


class Adapter(abc.ABC):
    """Base class: subclasses set ``name`` and ``capabilities`` and implement the hooks."""

    name: str = ""
    package: str = ""  # the importable package whose version is reported
    capabilities: Capabilities = Capabilities(batched=False, differentiable=False)
    # For docs/solvers.md, which ``qpbench solvers --markdown`` writes from these (never by hand):
    status_source: str = "the solver's"  # where the per-problem status comes from
    returns_multipliers: bool = True  # False: z only; the suite recovers multipliers at z
    takes_note: str = ""  # a limit the capabilities cannot express (a licence's size limit)
    options_note: str = ""  # why ``options`` maps the levels the way it does (measured where it matters)

    # ------------------------------------------------------------- availability
    def availability(self) -> tuple[bool, str]:
        """(available, reason). Must never raise: a missing package makes it unavailable."""
        try:
            self._import()
        except Exception as exc:
            return False, f"{type(exc).__name__}: {exc}"
        return True, ""

    @property
    def available(self) -> bool:
        return self.availability()[0]

    def version(self) -> str:
        """The package version, with the licence's restriction appended where there is one."""
        base = self.package_version()
        restriction = self.licence() if base else ""
        return f"{base} ({restriction})" if restriction else base

    def package_version(self) -> str:
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version(self.package) if self.package else ""
        except PackageNotFoundError:
            return ""

    def licence(self) -> str:
        """What restricts the licence in use ("" when nothing does), e.g. "size-limited licence"."""
        return ""

    def _import(self) -> Any:
        """Import the solver's package (override when the import is not just ``self.package``)."""
        import importlib

        return importlib.import_module(self.package.replace("-", "_"))

    # ------------------------------------------------------------- support checks
    def unsupported_reason(self, batch: QPBatch, device: str | None = None) -> str | None:
        """Why this adapter cannot take ``batch`` (None if it can). Driven by capabilities."""
        caps = self.capabilities
        dev = device or batch.device.type
        if dev not in caps.devices:
            return f"device {dev} not supported (supports {', '.join(caps.devices)})"
        if batch.dtype not in caps.dtypes:
            return f"dtype {batch.dtype} not supported"
        if batch.k and not caps.equalities:
            return "equality constraints not supported"
        if batch.m == 0 and caps.needs_inequalities:
            return "needs at least one inequality constraint"
        if batch.m + batch.k == 0 and caps.needs_constraints:
            return "needs at least one constraint row"
        if caps.needs_pd_q or not caps.lp:
            lo = torch.linalg.eigvalsh(batch.Q.double())[..., 0]
            scale = batch.Q.double().abs().amax().clamp_min(1.0)
            if caps.needs_pd_q and bool((lo <= 1e-10 * scale).any()):
                return "needs a positive definite Q"
            if not caps.lp and bool((batch.Q == 0).all()):
                return "linear programs (Q = 0) not supported"
        return None

    # ------------------------------------------------------------- the two timed steps
    @abc.abstractmethod
    def setup(self, batch: QPBatch, tolerance: Tolerance, time_limit: float) -> Any:
        """Build whatever the solver needs before solving (timed as setup)."""

    @abc.abstractmethod
    def solve(self, prepared: Any) -> SolveOutput:
        """Solve the prepared batch (timed as solve)."""

    @abc.abstractmethod
    def options(self, tolerance: Tolerance, time_limit: float) -> dict[str, Any]:
        """The solver's own options for a common tolerance level: the one place the mapping lives."""

    def differentiable_solve(self, batch: QPBatch, tolerance: Tolerance) -> Tensor:
        """z (B, n) as a function of the batch's tensors, differentiable by torch autograd.

        Only adapters whose capabilities say ``differentiable`` implement it. Gradients of shared
        (unbatched) tensors are whatever the solver gives; ``gradient_convention`` says which.
        """
        raise NotImplementedError(f"{self.name} is not differentiable")

    # 'sum' (gradient of a shared tensor = sum over the batch) or 'mean' (qpth's convention).
    gradient_convention: str = "sum"

    def describe(self) -> dict[str, Any]:
        ok, reason = self.availability()
        caps = self.capabilities
        return {
            "name": self.name,
            "available": ok,
            "reason": reason,
            "version": self.version() if ok else "",
            "batched": caps.batched,
            "differentiable": caps.differentiable,
            "devices": ",".join(caps.devices),
            "dtypes": ",".join(str(d).replace("torch.", "") for d in caps.dtypes),
            "needs_pd_q": caps.needs_pd_q,
            "equalities": caps.equalities,
            "lp": caps.lp,
        }
