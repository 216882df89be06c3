"""Central finite differences (Richardson-extrapolated) of a linear loss through exact active-set
solves, and the flags that mark problems where those differences do not measure a derivative."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from qpbench.gradcheck.active_set import (
    KKTPoint,
    kkt_condition,
    kkt_solve,
    kkt_system,
    reference_active_set,
    solve_kkt_system,
    switch_distance,
)
from qpbench.problem import NAMES, QPBatch

# Elements of KKT matrices built at once; bounds memory for full Jacobians of larger problems.
_CHUNK_ELEMENTS = 2**24
# A KKT matrix this ill-conditioned means the solution or multipliers are not unique (LICQ or
# second-order sufficiency fails): the solution map is not differentiable there.
MAX_CONDITION = 1e10


@dataclass
class Flag:
    problem: int
    reason: str
    detail: str = ""


@dataclass
class FiniteDifferences:
    """Per-problem directional derivatives of the loss, fd[name] (R, B), and the flagged problems."""

    fd: dict[str, Tensor]
    steps: dict[str, float]
    z: Tensor  # (B, n) float64: the exact solution of each problem (zero where not solved)
    flags: list[Flag] = field(default_factory=list)

    @property
    def flagged(self) -> set[int]:
        return {f.problem for f in self.flags}


def _perturbed(batch: QPBatch, name: str, delta: Tensor) -> dict[str, Tensor]:
    """The six tensors (R, B, ·) with ``delta`` (R, B, *S) added to parameter ``name``."""
    R = delta.shape[0]
    out = {}
    for key in NAMES:
        t = batch.expanded(key).unsqueeze(0)
        out[key] = t + delta if key == name else t.expand(R, *t.shape[1:])
    return out


def _solve_along(batch: QPBatch, name: str, D: Tensor, step: float, weights: Tensor, active: Tensor,
                 base_dist: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """For directions D (R, B, *S): the derivative (R, B), whether every perturbed solve succeeded
    and kept the active set (R, B), and the largest change of each row's switching distance (B, m).

    The derivative is Richardson-extrapolated from central differences at steps h and h/2,
    (4 d(h/2) - d(h)) / 3, which cancels the h^2 term: the forward solves are exact, so the
    truncation error of a plain central difference would be the only sizeable error left.
    """
    loss: dict[float, Tensor] = {}
    valid = torch.ones(D.shape[:2], dtype=torch.bool, device=D.device)
    largest_move = base_dist.new_zeros(base_dist.shape)
    for fraction in (1.0, -1.0, 0.5, -0.5):
        point: KKTPoint = kkt_solve(**_perturbed(batch, name, fraction * step * D), active=active)
        loss[fraction] = (weights * point.z).sum(-1)
        valid &= point.ok
        if base_dist.shape[-1]:
            dist = switch_distance(point, active)
            tiny = 64 * torch.finfo(dist.dtype).eps * (1.0 + point.z.abs().amax(-1, keepdim=True))
            valid &= (dist >= -tiny).all(-1)
            largest_move = torch.maximum(largest_move, (dist - base_dist).abs().amax(0))
    coarse = (loss[1.0] - loss[-1.0]) / (2.0 * step)
    fine = (loss[0.5] - loss[-0.5]) / step
    return (4.0 * fine - coarse) / 3.0, valid, largest_move


def finite_differences(
    batch: QPBatch,
    weights: Tensor,
    dirs: dict[str, Tensor],
    step: float = 1e-5,
    margin: float = 2.0,
) -> FiniteDifferences:
    """Derivatives of loss_b = weights_b' z_b along every direction, by central differences.

    ``batch`` is converted to float64. Each parameter's step is ``step * max(1, max|P|)``.
    Problems are flagged (and must not count as gradient errors) when the reference solver did
    not solve them, the active-set KKT system is singular or ill-conditioned, a perturbed solve
    changed the active set, or a row's distance from switching sides is within ``margin`` times
    the largest change one step makes to it (nearly degenerate: slack and multiplier both small).
    """
    if step <= 0:
        raise ValueError(f"step must be positive, got {step}")
    if margin < 1:
        raise ValueError(f"margin must be >= 1 (smaller ignores switches within the step), got {margin}")
    b64 = batch.to(dtype=torch.float64)
    weights = weights.to(device=b64.device, dtype=torch.float64)
    B, N = b64.batch_size, b64.n + b64.m + b64.k

    active, ref_solved, messages = reference_active_set(b64)
    active = active.to(b64.device)
    flags = [Flag(i, "reference not solved", msg) for i, msg in
             zip((i for i in range(B) if not bool(ref_solved[i])), messages, strict=True)]

    data = {k: b64.expanded(k) for k in NAMES}
    K, rhs = kkt_system(**data, active=active)
    cond = kkt_condition(K)
    base = solve_kkt_system(K, rhs, data["G"], data["h"], active)
    base_dist = switch_distance(base, active)
    tiny = 64 * torch.finfo(torch.float64).eps * (1.0 + base.z.abs().amax(-1))
    for i in range(B):
        if not bool(ref_solved[i]):
            continue
        if not bool(base.ok[i]) or not bool(cond[i] <= MAX_CONDITION):
            detail = f"condition {float(cond[i]):.3g} of the active-set system"
            flags.append(Flag(i, "singular KKT system", detail))
        elif b64.m and bool((base_dist[i] < -tiny[i]).any()):
            row = int(base_dist[i].argmin())
            side = "lambda" if bool(active[i, row]) else "slack"
            detail = f"row {row}: {side} = {float(base_dist[i, row]):.3g}"
            flags.append(Flag(i, "reference active set not optimal", detail))

    fd: dict[str, Tensor] = {}
    steps: dict[str, float] = {}
    largest_move = base_dist.new_zeros(B, b64.m)
    switched: dict[int, list[str]] = {}
    for name, D in dirs.items():
        if D.shape[0] == 0:
            continue
        values = getattr(b64, name)
        scale = float(values.abs().max()) if values.numel() else 1.0
        steps[name] = step * max(1.0, scale)
        per_chunk = max(1, _CHUNK_ELEMENTS // max(1, B * N * N))
        parts = []
        for start in range(0, D.shape[0], per_chunk):
            chunk = D[start : start + per_chunk].to(device=b64.device, dtype=torch.float64)
            part, valid, move = _solve_along(b64, name, chunk, steps[name], weights, active, base_dist)
            parts.append(part)
            largest_move = torch.maximum(largest_move, move)
            for i in torch.nonzero(~valid.all(0)).flatten().tolist():
                switched.setdefault(i, []).append(name)
        fd[name] = torch.cat(parts)

    already = {f.problem for f in flags}
    for i, names in sorted(switched.items()):
        if i not in already:
            detail = f"perturbing {', '.join(sorted(set(names)))}"
            flags.append(Flag(i, "active set changes within the step", detail))
    already = {f.problem for f in flags}
    if b64.m:
        near = base_dist <= margin * largest_move + tiny.unsqueeze(-1)
        for i in range(B):
            if i not in already and bool(near[i].any()):
                row = int(torch.nonzero(near[i]).flatten()[0])
                side = "lambda" if bool(active[i, row]) else "slack"
                flags.append(Flag(i, "near-degenerate constraint",
                                  f"row {row}: {side} {float(base_dist[i, row]):.3g} vs change "
                                  f"{float(largest_move[i, row]):.3g} per step"))
    return FiniteDifferences(fd=fd, steps=steps, z=base.z, flags=sorted(flags, key=lambda f: f.problem))
