"""The sampling LP algorithm and its enhanced (neighbour-region) variant.

Sampling LP: draw points uniformly in the box, take each point's activation pattern, solve the LP
of every new linear region as one batch, and keep the best optimum, re-evaluated with a forward
pass (the value a user gets, not the LP's own number). Repeat until the sample or time budget runs
out.

Enhanced: an LP optimum usually sits where some neurons' pre-activations are zero, i.e. on the
border of neighbouring regions. Flipping one such neuron gives a neighbour region that also
contains the point and on which f agrees there (f is continuous), so the neighbour's LP optimum is
at least as good. The best optima are improved this way, one batch of neighbour LPs per step,
until no flip helps (a local search over adjacent regions).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from qpbench.relu.lp_solvers import solve_lps
from qpbench.relu.network import ReluNet
from qpbench.relu.regions import (
    FORMS,
    cheaper_form,
    check_box,
    lifted_region_lps,
    region_lps,
    sample_box,
    unique_patterns,
)


@dataclass
class SearchResult:
    """Best point found and how the best value evolved (seconds since start, best f)."""

    method: str
    best_x: Tensor
    best_value: float
    trace: list[tuple[float, float]] = field(default_factory=list)
    samples: int = 0
    lps_solved: int = 0
    lp_failures: int = 0
    lp_seconds: float = 0.0
    seconds: float = 0.0
    info: dict[str, Any] = field(default_factory=dict)


class _PatternSet:
    """Patterns already solved, stored as packed bytes so membership is a set lookup."""

    def __init__(self) -> None:
        self._seen: set[bytes] = set()

    def keep_new(self, patterns: Tensor) -> Tensor:
        """Indices of rows not seen before (and mark them seen)."""
        packed = np.packbits(patterns.cpu().numpy(), axis=1)
        keep = []
        for i, row in enumerate(packed):
            key = row.tobytes()
            if key not in self._seen:
                self._seen.add(key)
                keep.append(i)
        return torch.tensor(keep, dtype=torch.long, device=patterns.device)

    def __len__(self) -> int:
        return len(self._seen)


class _Search:
    """Shared state of one run: budget, best point, trace, LP statistics."""

    def __init__(self, net: ReluNet, lo: Tensor, hi: Tensor, method: str, backend: str,
                 proximal: float, lp_options: dict[str, Any]) -> None:
        self.net, self.lo, self.hi = net, lo, hi
        self.backend, self.proximal, self.lp_options = backend, proximal, lp_options
        self.form = "reduced"  # or 'lifted': set by sampling_search
        self.start = time.perf_counter()
        self.seen = _PatternSet()
        self.result = SearchResult(method, lo.clone(), float("-inf"))
        self.neighbour_lps = 0  # enhanced search: LPs of neighbouring regions
        self.improving_moves = 0  # enhanced search: moves to a better neighbouring region

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def offer(self, x: Tensor) -> Tensor:
        """Forward-pass values of candidate points (clamped into the box); updates the best."""
        x = torch.minimum(torch.maximum(x, self.lo), self.hi)
        values = self.net.forward(x)
        i = int(torch.argmax(values))
        if float(values[i]) > self.result.best_value:
            self.result.best_value = float(values[i])
            self.result.best_x = x[i].clone()
            self.result.trace.append((self.elapsed(), self.result.best_value))
        return values

    def solve_regions(self, patterns: Tensor, centers: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Solve the LPs of new patterns; returns (patterns solved, optima, f at optima)."""
        fresh = self.seen.keep_new(patterns)
        if fresh.numel() == 0:
            return self._nothing(patterns, centers)
        patterns, centers = patterns[fresh], centers[fresh]
        build = lifted_region_lps if self.form == "lifted" else region_lps
        batch = build(self.net, patterns, self.lo, self.hi, self.proximal, centers)
        out = solve_lps(batch, self.backend, **self.lp_options)
        self.result.lps_solved += patterns.shape[0]
        self.result.lp_seconds += out.seconds
        ok = out.solved
        self.result.lp_failures += int((~ok).sum())
        if not bool(ok.any()):
            return self._nothing(patterns, centers)
        z = out.z[ok, : self.net.input_dim].to(self.net.dtype)  # lifted: x is the leading block
        return patterns[ok], z, self.offer(z)

    def _nothing(self, patterns: Tensor, centers: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """What :meth:`solve_regions` returns when no LP was solved: three empty tensors."""
        return patterns[:0], centers[:0], torch.zeros(0, dtype=self.net.dtype, device=self.net.device)


def _check_budget(max_samples: int | None, time_budget: float | None, batch_size: int) -> None:
    if max_samples is None and time_budget is None:
        raise ValueError("give max_samples or time_budget (or both); the search needs a stopping rule")
    if max_samples is not None and max_samples < 1:
        raise ValueError(f"max_samples must be >= 1, got {max_samples}")
    if time_budget is not None and time_budget <= 0:
        raise ValueError(f"time_budget must be positive, got {time_budget}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")


def boundary_neurons(net: ReluNet, x: Tensor, zero_tol: float) -> Tensor:
    """(S, n_hidden) bool: neurons whose pre-activation at x is numerically zero.

    'Zero' is relative to the neuron's scale |W_row|_1 * max(1, |x|_inf) + |bias| so that wide
    layers with large weights are judged alike.
    """
    _, pre = net.forward_with_preactivations(x)
    flags = []
    h_scale = torch.clamp(x.abs().amax(1, keepdim=True), min=1.0)
    for a, W, b in zip(pre, net.weights[:-1], net.biases[:-1], strict=True):
        scale = W.abs().sum(1) * h_scale + b.abs()
        flags.append(a.abs() <= zero_tol * scale)
        h_scale = torch.clamp(a.clamp_min(0).abs().amax(1, keepdim=True), min=1.0)
    return torch.cat(flags, dim=1)


def neighbour_patterns(patterns: Tensor, on_boundary: Tensor, max_flips: int) -> tuple[Tensor, Tensor]:
    """Each pattern with one boundary neuron flipped (at most ``max_flips`` per pattern).

    Returns (new patterns (N, H), index of the parent pattern (N,)).
    """
    rows, cols = torch.nonzero(on_boundary, as_tuple=True)
    if max_flips > 0 and rows.numel():
        # Rank of each flip within its row, to keep the first max_flips per parent.
        first_of_row = torch.searchsorted(rows, rows, right=False)
        rank = torch.arange(rows.numel(), device=rows.device) - first_of_row
        keep = rank < max_flips
        rows, cols = rows[keep], cols[keep]
    flipped = patterns[rows].clone()
    flipped[torch.arange(rows.numel(), device=rows.device), cols] ^= True
    return flipped, rows


def sampling_search(
    net: ReluNet,
    lo: Tensor,
    hi: Tensor,
    *,
    max_samples: int | None = None,
    time_budget: float | None = None,
    batch_size: int = 256,
    backend: str = "highs",
    enhanced: bool = False,
    proximal: float = 0.0,
    zero_tol: float = 1e-6,
    local_starts: int = 8,
    max_flips: int = 64,
    max_local_steps: int = 20,
    seed: int = 0,
    form: str = "auto",
    lp_options: dict[str, Any] | None = None,
) -> SearchResult:
    """Maximize f over the box by the sampling LP algorithm (``enhanced`` adds the neighbour search).

    Each round draws ``batch_size`` samples, solves the LPs of their new regions as one batch,
    and (enhanced) runs the neighbour search from the round's ``local_starts`` best optima.
    ``form`` picks the LP encoding: 'reduced', 'lifted', or 'auto' (:func:`cheaper_form` for the
    backend: the in-house solver is dense, HiGHS sparse).
    """
    if form not in (*FORMS, "auto"):
        raise ValueError(f"form must be one of {(*FORMS, 'auto')}, got {form!r}")
    lo, hi = check_box(net, lo, hi)
    _check_budget(max_samples, time_budget, batch_size)
    if zero_tol <= 0:
        raise ValueError(f"zero_tol must be positive, got {zero_tol}")
    search = _Search(net, lo, hi, "sampling+enhanced" if enhanced else "sampling", backend, proximal,
                     dict(lp_options or {}))
    search.form = cheaper_form(net, dense=backend == "inhouse") if form == "auto" else form
    gen = torch.Generator().manual_seed(seed)
    result = search.result

    def out_of_budget() -> bool:
        if max_samples is not None and result.samples >= max_samples:
            return True
        return time_budget is not None and search.elapsed() >= time_budget

    while not out_of_budget():
        count = batch_size if max_samples is None else min(batch_size, max_samples - result.samples)
        x = sample_box(lo, hi, count, gen)
        result.samples += count
        search.offer(x)  # every sample is itself a feasible point
        uniq = unique_patterns(net.patterns(x))
        patterns, z, values = search.solve_regions(uniq.patterns, x[uniq.first])
        if enhanced and values.numel():
            top = torch.argsort(values, descending=True)[:local_starts]
            _local_search(search, patterns[top], z[top], values[top], zero_tol, max_flips,
                          max_local_steps, out_of_budget)
    result.seconds = search.elapsed()
    result.info = {"regions": len(search.seen), "backend": backend, "proximal": proximal,
                   "neighbour_lps": search.neighbour_lps, "improving_moves": search.improving_moves,
                   "form": search.form}
    return result


def _local_search(search: _Search, patterns: Tensor, z: Tensor, values: Tensor, zero_tol: float,
                  max_flips: int, max_steps: int, out_of_budget: Callable[[], bool]) -> None:
    """Move each start to the best neighbouring region's optimum while that improves f."""
    for _ in range(max_steps):
        if out_of_budget() or patterns.shape[0] == 0:
            return
        flips, parent = neighbour_patterns(patterns, boundary_neurons(search.net, z, zero_tol), max_flips)
        if flips.shape[0] == 0:
            return
        before = search.result.lps_solved
        new_patterns, new_z, new_values = search.solve_regions(flips, z[parent])
        search.neighbour_lps += search.result.lps_solved - before
        if new_values.numel() == 0:
            return
        # Keep the best neighbour per parent, when it beats the parent by more than rounding.
        parent_of_new = _parents_of(flips, parent, new_patterns)
        best = torch.full_like(values, float("-inf")).scatter_reduce(0, parent_of_new, new_values, "amax")
        improved = best > values + 1e-9 * (1 + values.abs())
        if not bool(improved.any()):
            return
        winners = []
        for i in torch.nonzero(improved).flatten().tolist():
            mine = torch.nonzero((parent_of_new == i) & (new_values == best[i])).flatten()
            winners.append(int(mine[0]))
        search.improving_moves += len(winners)
        pick = torch.tensor(winners, dtype=torch.long, device=new_values.device)
        patterns, z, values = new_patterns[pick], new_z[pick], new_values[pick]


def _parents_of(flips: Tensor, parent: Tensor, solved: Tensor) -> Tensor:
    """Parent index of each solved pattern (solved is a subset of the rows of flips)."""
    lookup = {row.tobytes(): int(p) for row, p in zip(np.packbits(flips.cpu().numpy(), axis=1),
                                                      parent.cpu(), strict=True)}
    keys = np.packbits(solved.cpu().numpy(), axis=1)
    return torch.tensor([lookup[k.tobytes()] for k in keys], dtype=torch.long, device=solved.device)
