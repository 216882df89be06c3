"""Settings of the in-house batched primal-dual interior-point solver."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Literal

import torch

KKTForm = Literal["auto", "primal", "dual"]


@dataclass(frozen=True)
class SolverSettings:
    """Tolerances default by dtype (``None``): float64 1e-8 absolute / 1e-9 relative,
    float32 1e-4 / 1e-4, since float32 cannot reach float64 accuracy.

    A problem is solved when, in the original (unscaled) data,
    primal <= eps_abs + eps_rel * max(|Gz|, |h|, |Az|, |b|),
    dual   <= eps_abs + eps_rel * max(|Qz|, |p|, |G'lam|, |A'nu|),
    gap    <= eps_abs + eps_rel * max(|z'Qz|, |p'z|, |h'lam|, |b'nu|)   (all infinity norms).
    """

    eps_abs: float | None = None
    eps_rel: float | None = None
    eps_infeasible: float | None = None  # threshold of the infeasibility certificates (scaled data)
    max_iter: int = 100
    # 'primal' factors the n x n matrix Q + G'WG; 'dual' factors the m x m Schur complement
    # W^-1 + G Q^-1 G' (needs a well-conditioned positive definite Q); 'auto' picks the cheaper.
    kkt_form: KKTForm = "auto"
    scaling_iters: int = 10  # Ruiz equilibration passes (0 = off)
    rho: float | None = None  # primal (proximal) regularization; None = by dtype
    delta: float | None = None  # dual regularization of the equality block; None = by dtype
    step_fraction: float = 0.99  # fraction of the step to the boundary
    compact_below: float = 0.7  # drop converged problems from the working set below this active share
    refine_steps: int = 1  # iterative-refinement passes against the unregularized system
    # Test-only: extra factorizations per iteration, to prove the regression check catches a slowdown.
    extra_factorizations: int = 0

    def __post_init__(self) -> None:
        for name in ("eps_abs", "eps_rel", "eps_infeasible", "rho", "delta"):
            value = getattr(self, name)
            if value is not None and not (value >= 0 and value < 1):
                raise ValueError(f"{name} must be in [0, 1), got {value!r}")
        if self.max_iter < 1:
            raise ValueError(f"max_iter must be >= 1, got {self.max_iter}")
        if self.kkt_form not in ("auto", "primal", "dual"):
            raise ValueError(f"kkt_form must be 'auto', 'primal' or 'dual', got {self.kkt_form!r}")
        if not 0 < self.step_fraction < 1:
            raise ValueError(f"step_fraction must be in (0, 1), got {self.step_fraction}")
        if self.scaling_iters < 0 or self.refine_steps < 0 or self.extra_factorizations < 0:
            raise ValueError("scaling_iters, refine_steps and extra_factorizations must be >= 0")
        if not 0 <= self.compact_below <= 1:
            raise ValueError(f"compact_below must be in [0, 1], got {self.compact_below}")

    def resolved(self, dtype: torch.dtype) -> SolverSettings:
        """A copy with every dtype-dependent default filled in."""
        single = dtype == torch.float32
        defaults = {
            "eps_abs": 1e-4 if single else 1e-8,
            "eps_rel": 1e-4 if single else 1e-9,
            "eps_infeasible": 1e-3 if single else 1e-7,
            "rho": 1e-6 if single else 1e-9,
            "delta": 1e-6 if single else 1e-9,
        }
        return replace(self, **{k: v for k, v in defaults.items() if getattr(self, k) is None})

    def with_updates(self, **overrides: object) -> SolverSettings:
        known = {f.name for f in fields(self)}
        unknown = set(overrides) - known
        if unknown:
            raise ValueError(f"unknown solver settings: {sorted(unknown)}; known: {sorted(known)}")
        return replace(self, **overrides)
