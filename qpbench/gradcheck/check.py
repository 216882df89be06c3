"""check_gradients: analytic gradients of each differentiable adapter against finite differences."""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Iterable

import pandas as pd
import torch
from torch import Tensor

from qpbench.adapters.base import Adapter, Tolerance
from qpbench.gradcheck.directions import directions
from qpbench.gradcheck.finite_diff import finite_differences
from qpbench.gradcheck.report import CROSS_COLUMNS, FLAGGED_COLUMNS, TABLE_COLUMNS, GradCheckReport
from qpbench.problem import NAMES, QPBatch

# Full Jacobians up to this many variables; random directional derivatives above it (mode "auto").
FULL_MAX_N = 10
CONVENTIONS = ("sum", "mean")


def loss_weights(batch: QPBatch, seed: int) -> Tensor:
    """The seeded c (B, n) of the loss sum_b c_b' z_b, float64 on the batch's device."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(batch.batch_size, batch.n, generator=gen, dtype=torch.float64).to(batch.device)


def _check_convention(adapter: Adapter) -> None:
    if adapter.gradient_convention not in CONVENTIONS:
        raise ValueError(f"adapters: {adapter.name!r} has gradient_convention "
                         f"{adapter.gradient_convention!r}; expected 'sum' or 'mean'")


def analytic_gradients(adapter: Adapter, batch: QPBatch, weights: Tensor, tolerance: Tolerance
                       ) -> tuple[dict[str, Tensor], Tensor]:
    """Autograd gradients of sum_b c_b' z_b, float64, shaped like the batch's tensors, and the
    adapter's solution z (B, n) in float64.

    Gradients of shared tensors are returned in the sum convention: an adapter that averages
    them over the batch (qpth) is multiplied by the batch size.
    """
    _check_convention(adapter)
    leaves = {k: t.detach().clone().requires_grad_(True) for k, t in batch.tensors().items()}
    leaf_batch = QPBatch(**leaves, name=batch.name, meta=dict(batch.meta), check="none")
    z = adapter.differentiable_solve(leaf_batch, tolerance)
    if tuple(z.shape) != (batch.batch_size, batch.n):
        raise ValueError(f"{adapter.name}: differentiable_solve returned shape {tuple(z.shape)}, "
                         f"expected {(batch.batch_size, batch.n)}")
    (z * weights.to(device=z.device, dtype=z.dtype)).sum().backward()
    grads = {}
    for name, leaf in leaves.items():
        g = leaf.grad if leaf.grad is not None else torch.zeros_like(leaf)
        g = g.detach().to(torch.float64)
        if adapter.gradient_convention == "mean" and not leaf_batch.is_batched(name):
            g = g * batch.batch_size
        grads[name] = g
    return grads, z.detach().to(torch.float64)


def _compare(batch: QPBatch, grads: dict[str, Tensor], dirs: dict[str, Tensor], fd: dict[str, Tensor],
             scale: Tensor) -> list[dict[str, object]]:
    """One row per parameter: errors of the analytic directional derivatives against FD.

    ``batch``, ``dirs``, ``fd`` and ``scale`` (B,) cover the compared problems only.
    """
    rows = []
    for name, D in dirs.items():
        if D.shape[0] == 0:
            continue
        trailing = tuple(range(2, D.dim()))
        g = grads[name].to(D.device)
        if batch.is_batched(name):
            ana = (g.unsqueeze(0) * D).sum(trailing)  # (R, B)
            err = (ana - fd[name]).abs()
            rel = err / scale.unsqueeze(0)
            per_problem = rel.amax(0)
            worst = int(per_problem.nan_to_num(float("inf")).argmax())
            layout = "batched"
        else:
            ana = (g.unsqueeze(0) * D[:, 0]).sum(tuple(range(1, D.dim() - 1)))  # (R,)
            err = (ana - fd[name].sum(1)).abs()
            rel = err / scale.sum()
            worst, layout = -1, "shared"
        rows.append({
            "parameter": name,
            "layout": layout,
            "compared": int(err.numel()),
            "max_abs_err": float(err.max()),
            "max_rel_err": float(rel.max()),
            "worst_problem": worst,
        })
    return rows


def _cross(grads: dict[str, dict[str, Tensor]]) -> list[dict[str, object]]:
    """Pairwise differences of solvers' full gradients (Q symmetrized; sum convention)."""
    rows = []

    def sym(name: str, g: Tensor) -> Tensor:
        return 0.5 * (g + g.transpose(-1, -2)) if name == "Q" else g

    for a, b in itertools.combinations(sorted(grads), 2):
        ga = {k: sym(k, v) for k, v in grads[a].items()}
        gb = {k: sym(k, v) for k, v in grads[b].items()}
        # NaN entries make their own parameter's difference NaN, but must not hide the others'.
        scale = max([float(t.abs().nan_to_num(0.0).max()) for t in (*ga.values(), *gb.values())
                     if t.numel()] + [1e-300])
        for name in NAMES:
            if ga[name].numel() == 0:
                continue
            diff = float((ga[name] - gb[name].to(ga[name].device)).abs().max())
            rows.append({"solver_a": a, "solver_b": b, "parameter": name,
                         "max_abs_diff": diff, "max_rel_diff": diff / scale})
    return rows


def check_gradients(
    batch: QPBatch,
    adapters: Iterable[Adapter],
    mode: str = "auto",
    *,
    directions_per_parameter: int = 4,
    step: float = 1e-5,
    margin: float = 2.0,
    threshold: float = 1e-5,
    seed: int = 0,
    tolerance: Tolerance | str = Tolerance.HIGH,
) -> GradCheckReport:
    """Compare each adapter's gradients of a seeded linear loss with central finite differences.

    ``mode``: "full" (every entry of every parameter; Q along symmetric pairs), "directional"
    (``directions_per_parameter`` random directions per parameter) or "auto" (full when
    n <= 10). The adapters run on the batch in its own dtype and device; finite differences
    always run in float64 on the same problems. Problems flagged as non-differentiable within the
    step are left out of every adapter's comparison (see :func:`finite_differences`).
    """
    adapters = list(adapters)
    for adapter in adapters:
        if not adapter.capabilities.differentiable:
            raise ValueError(f"adapters: {adapter.name!r} is not differentiable")
        _check_convention(adapter)
    if mode == "auto":
        mode = "full" if batch.n <= FULL_MAX_N else "directional"
    if mode not in ("full", "directional"):
        raise ValueError(f"mode must be 'full', 'directional' or 'auto', got {mode!r}")
    if not threshold > 0:
        raise ValueError(f"threshold must be positive, got {threshold}")
    if mode == "directional" and directions_per_parameter < 1:
        raise ValueError(f"directions_per_parameter must be >= 1, got {directions_per_parameter}")
    tolerance = Tolerance.parse(tolerance)

    gen = torch.Generator().manual_seed(seed + 1)
    dirs = {name: directions(batch, name, mode, directions_per_parameter, gen) for name in NAMES}
    weights = loss_weights(batch, seed)
    result = finite_differences(batch, weights, dirs, step=step, margin=margin)

    keep = [i for i in range(batch.batch_size) if i not in result.flagged]
    meta = {
        "mode": mode, "step": step, "margin": margin, "seed": seed, "tolerance": tolerance.value,
        "n": batch.n, "m": batch.m, "k": batch.k, "batch_size": batch.batch_size,
        "dtype": str(batch.dtype).replace("torch.", ""), "device": str(batch.device),
        "family": batch.name or "batch", "problems_compared": len(keep),
        "reference": "Clarabel (tol 1e-10)",
        "shared": [k for k in NAMES if not batch.is_batched(k)],
        "convention_note": "gradients of shared tensors are compared in the SUM convention "
                           "(sum over the batch); adapters using the MEAN convention (qpth) are "
                           "multiplied by the batch size before comparing.",
        "conventions": {a.name: a.gradient_convention for a in adapters},
    }
    flagged = pd.DataFrame([vars(f) for f in result.flags], columns=FLAGGED_COLUMNS)
    rows: list[dict[str, object]] = []
    grads_by_solver: dict[str, dict[str, Tensor]] = {}
    skipped: dict[str, str] = {}
    failed: dict[str, str] = {}
    solver_warnings: dict[str, list[str]] = {}
    if keep:
        index = torch.tensor(keep)
        sub = batch[index]
        kept_dirs = {k: D[:, index.to(D.device)] for k, D in dirs.items()}
        kept_fd = {k: v[:, index.to(v.device)] for k, v in result.fd.items()}
        scale = torch.stack([v.abs().amax(0) for v in kept_fd.values()]).amax(0).clamp_min(1e-300)
        for adapter in adapters:
            reason = adapter.unsupported_reason(sub)
            if reason is not None:
                skipped[adapter.name] = reason
                continue
            try:
                # Layers warn about unsolved problems (zero gradients): keep those for the report.
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    grads, z = analytic_gradients(adapter, sub, weights[index.to(weights.device)], tolerance)
            except Exception as exc:  # any adapter failure is reported, not raised
                failed[adapter.name] = f"{type(exc).__name__}: {exc}"
                continue
            # Deprecation notices from the solvers' dependencies say nothing about the results.
            messages = list(dict.fromkeys(str(w.message) for w in caught if not issubclass(
                w.category, (DeprecationWarning, PendingDeprecationWarning, FutureWarning))))
            if messages:
                solver_warnings[adapter.name] = messages
            grads_by_solver[adapter.name] = grads
            # The forward error tells a wrong backward pass from an inaccurate forward solve.
            exact_z = result.z[index.to(result.z.device)]
            forward_err = float(((z.to(exact_z.device) - exact_z).abs().amax(-1)
                                 / exact_z.abs().amax(-1).clamp_min(1.0)).max())
            for row in _compare(sub, grads, kept_dirs, kept_fd, scale):
                row["worst_problem"] = keep[row["worst_problem"]] if row["worst_problem"] >= 0 else -1
                rows.append({"solver": adapter.name, **row, "forward_err": forward_err,
                             "passed": bool(row["max_rel_err"] <= threshold)})
    table = pd.DataFrame(rows, columns=TABLE_COLUMNS)
    cross = pd.DataFrame(_cross(grads_by_solver), columns=CROSS_COLUMNS)
    return GradCheckReport(table=table, flagged=flagged, cross=cross, threshold=threshold, meta=meta,
                           skipped=skipped, failed=failed, warnings=solver_warnings)
