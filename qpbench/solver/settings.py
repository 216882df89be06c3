"""Settings of the in-house proximal interior-point solver (docs/solver.md explains each)."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Literal

import torch

KKTFormName = Literal["auto", "reduced", "dual"]
KKT_FORMS: tuple[str, ...] = ("auto", "reduced", "dual")
ModeName = Literal["auto", "compact", "fixed"]
MODES: tuple[str, ...] = ("auto", "compact", "fixed")

# Defaults that depend on the dtype: float32 can neither reach float64's accuracy nor carry its
# small regularizations (1e-10 next to entries of 1 is below float32's resolution of 1.2e-7).
# The floors sit near eps^(2/3) of each dtype (3.7e-11 and 2.4e-5). In the reduced form the
# equality rows enter as A'A/delta, so a factorization's rounding is about eps |A|^2 / delta: at
# float32's former floor of 1e-6 that was a tenth of the scaled data's unit entries, and control
# problems stalled at dual residuals of 1e-3 (docs/solver.md, "float32").
_DTYPE_DEFAULTS: dict[torch.dtype, dict[str, float]] = {
    torch.float64: {
        "eps_abs": 1e-8,
        "eps_rel": 1e-9,
        "eps_infeasible": 1e-4,
        "rho_init": 1e-6,
        "delta_init": 1e-4,
        "reg_floor": 1e-10,
        "reg_finetune_floor": 1e-13,
    },
    torch.float32: {
        "eps_abs": 1e-4,
        "eps_rel": 1e-4,
        "eps_infeasible": 1e-3,
        "rho_init": 1e-4,
        "delta_init": 1e-3,
        "reg_floor": 3e-5,
        "reg_finetune_floor": 3e-6,
    },
}
_UNIT_INTERVAL = ("eps_abs", "eps_rel", "eps_infeasible", "rho_init", "delta_init", "reg_floor", "reg_finetune_floor")


@dataclass(frozen=True)
class SolverSettings:
    """``None`` means "the default for the batch's dtype" (see ``resolved``).

    A problem is solved when, in the original (unscaled) data,
    primal <= eps_abs + eps_rel * max(|Gz|, |h|, |Az|, |b|),
    dual   <= eps_abs + eps_rel * max(|Qz|, |p|, |G'lam|, |A'nu|),
    gap    <= eps_abs + eps_rel * max(|z'Qz|, |p'z|, |h'lam|, |b'nu|)   (all infinity norms).
    """

    eps_abs: float | None = None
    eps_rel: float | None = None
    # Infeasibility and unboundedness certificates: relative tolerance of the tests on the last
    # step, independent of eps_abs, so that they work at any accuracy (docs/solver.md).
    eps_infeasible: float | None = None
    max_iter: int = 200
    # 'reduced' factors the n x n matrix Q + rho I + G'WG + A'A/delta; 'dual' the (m+k)-sized
    # C Q^-1 C' + diag(1/W, delta) (only where Q is safely positive definite); 'auto' picks per
    # problem the cheaper form that applies.
    kkt_form: KKTFormName = "auto"
    scaling_iters: int = 10  # Ruiz equilibration passes (0 = off)
    scale_cost: bool = False  # also scale the objective by 1/max(|Q|, |p|) after Ruiz
    rho_init: float | None = None  # primal proximal parameter at the start
    delta_init: float | None = None  # dual proximal parameter at the start
    reg_floor: float | None = None  # rho and delta are not decreased below this ...
    reg_finetune_floor: float | None = None  # ... unless progress stalls there: then this
    step_fraction: float = 0.99  # fraction of the step to the boundary of s, lam >= 0
    max_factor_retries: int = 10  # consecutive failed factorizations before NUMERICAL_ERROR
    # 'compact' drops finished problems from the working set and synchronizes every iteration;
    # 'fixed' masks them and synchronizes every check_every iterations (CUDA-graph friendly);
    # 'auto' is compact on the CPU and fixed on other devices.
    mode: ModeName = "auto"
    # Fixed mode: iterations between convergence checks on the host; None: 1 on the CPU (where a
    # check costs microseconds and saves the iterations a converged problem would wait), 5 on
    # other devices (where each check stalls the device).
    check_every: int | None = None
    cuda_graphs: bool = True  # fixed mode on CUDA: replay the iteration as a CUDA graph
    # Run each iteration as one torch.compile'd function (needs the fixed-shape mode, which 'auto'
    # then picks; replaces CUDA graphs): compiles once per shape, seconds to a minute, then
    # removes most of the per-operation overhead that decides small batches (docs/solver.md).
    compile: bool = False
    compact_below: float = 0.7  # compact mode: drop finished problems below this active share

    def __post_init__(self) -> None:
        for name in _UNIT_INTERVAL:
            value = getattr(self, name)
            if value is not None and not (0 <= value < 1):
                raise ValueError(f"{name} must be in [0, 1), got {value!r}")
        for name in ("rho_init", "delta_init", "reg_floor", "reg_finetune_floor"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"{name} must be positive, got {value!r}")
        if self.max_iter < 1:
            raise ValueError(f"max_iter must be >= 1, got {self.max_iter}")
        if self.kkt_form not in KKT_FORMS:
            raise ValueError(f"kkt_form must be one of {', '.join(KKT_FORMS)}; got {self.kkt_form!r}")
        if not 0 < self.step_fraction < 1:
            raise ValueError(f"step_fraction must be in (0, 1), got {self.step_fraction}")
        if self.scaling_iters < 0:
            raise ValueError(f"scaling_iters must be >= 0, got {self.scaling_iters}")
        if self.max_factor_retries < 1:
            raise ValueError(f"max_factor_retries must be >= 1, got {self.max_factor_retries}")
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}; got {self.mode!r}")
        if self.compile and self.mode == "compact":
            raise ValueError("compile=True needs mode 'fixed' or 'auto' (a compiled iteration has fixed shapes)")
        if self.check_every is not None and self.check_every < 1:
            raise ValueError(f"check_every must be >= 1, got {self.check_every}")
        if not 0 <= self.compact_below <= 1:
            raise ValueError(f"compact_below must be in [0, 1], got {self.compact_below}")

    def resolved(self, dtype: torch.dtype, device: torch.device | str = "cpu") -> SolverSettings:
        """A copy with every dtype- and device-dependent default filled in."""
        defaults: dict[str, object] = dict(_DTYPE_DEFAULTS[dtype])
        defaults["check_every"] = 1 if torch.device(device).type == "cpu" else 5
        return replace(self, **{k: v for k, v in defaults.items() if getattr(self, k) is None})

    def with_updates(self, **overrides: object) -> SolverSettings:
        known = {f.name for f in fields(self)}
        unknown = set(overrides) - known
        if unknown:
            raise ValueError(f"unknown solver settings: {sorted(unknown)}; known: {sorted(known)}")
        return replace(self, **overrides)


def parse_overrides(items: list[str]) -> dict[str, object]:
    """``KEY=VALUE`` texts (a command line's ``--setting``) as solver settings: true/false,
    integers and floats recognised, anything else kept as text. ValueError names an item that is
    not KEY=VALUE, an unknown setting or a value the settings refuse."""
    out: dict[str, object] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise ValueError(f"{item!r}: expected KEY=VALUE")
        out[key] = _setting_value(text)
    try:
        SolverSettings().with_updates(**out)
    except TypeError as exc:
        raise ValueError(str(exc)) from None
    return out


def _setting_value(text: str) -> object:
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            continue
    return text
