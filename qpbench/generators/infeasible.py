"""Deliberately infeasible and unbounded families, to test that a solver reports the right
per-problem status instead of a wrong answer or an exception."""

from __future__ import annotations

import torch

from qpbench.generators._common import (
    cpu_generator,
    finish,
    mv,
    ones,
    rand,
    randn,
    require_at_most,
    shuffle_rows,
    strictly_feasible_rhs,
    well_conditioned_psd,
)
from qpbench.generators._registry import register
from qpbench.problem import QPBatch


@register(
    "primal_infeasible",
    description="Random feasible rows plus one contradictory pair g z <= c and -g z <= -(c + gap), "
    "gap >= 1, at random positions: no z satisfies both.",
    sizes=lambda n: (max(2, n), 0),
    expected_status="primal_infeasible",
)
def primal_infeasible(
    B: int, n: int, m: int, k: int, seed: int, dtype: torch.dtype, device: torch.device | str
) -> QPBatch:
    """Q PD, p ~ N(0,1); m - 2 Gaussian rows with h = G z0 + s0 and optional equalities
    b = A z0 (k <= n), all satisfied by z0; then a row g ~ N(0,1) with g z <= g z0 and its
    negation with -g z <= -(g z0 + gap), gap ~ U[1, 2). Together they demand
    g z0 + gap <= g z <= g z0, which is impossible: primal infeasible by construction.
    Without the pair the problem would be feasible, so only that pair is to blame."""
    if m < 2:
        raise ValueError(f"m = {m} is too small: primal_infeasible needs m >= 2 (the contradictory pair)")
    require_at_most("k", k, n, "A must have full row rank")
    gen = cpu_generator(seed)
    Q = well_conditioned_psd(gen, B, n)
    p = randn(gen, B, n)
    z0 = randn(gen, B, n)
    G_ok = randn(gen, B, m - 2, n)
    h_ok = strictly_feasible_rhs(gen, G_ok, z0)
    g = randn(gen, B, 1, n)
    c = mv(g, z0)
    gap = 1.0 + rand(gen, B, 1)
    G = torch.cat([G_ok, g, -g], dim=1)
    h = torch.cat([h_ok, c, -(c + gap)], dim=-1)
    G, h = shuffle_rows(gen, G, h)
    A = randn(gen, B, k, n)
    b = mv(A, z0)
    return finish("primal_infeasible", seed, "primal_infeasible", dtype, device, Q, p, G, h, A, b)


@register(
    "dual_infeasible",
    description="Unbounded below: a variable z_j absent from Q and A, with cost p_j = -1 and only "
    "non-positive coefficients in G, can grow without bound while z0 stays feasible.",
    sizes=lambda n: (n, n // 4),
    expected_status="dual_infeasible",
    min_n=2,
)
def dual_infeasible(
    B: int, n: int, m: int, k: int, seed: int, dtype: torch.dtype, device: torch.device | str
) -> QPBatch:
    """Pick a random coordinate j per problem and let d = e_j. Q = M M^T/n + 0.1 I with row
    and column j set to 0, so Q d = 0; p ~ N(0,1) with p_j = -1, so p'd = -1; G ~ N(0,1) with
    column j = -t, t ~ U[0,1), so G d = -t <= 0; A ~ N(0,1) with column j = 0, so A d = 0
    (k <= n - 1). z0 ~ N(0,1) gives h = G z0 + s0 and b = A z0. Then z0 + a d is feasible for
    every a >= 0 and the objective falls by a along it: (Q d = 0, p'd < 0, G d <= 0, A d = 0)
    certifies dual infeasibility. The certificate rests on exact zeros and signs, so it also
    holds after rounding to float32 (a general null direction would not be exact there).
    """
    require_at_most("k", k, n - 1, "A d = 0 leaves at most n - 1 independent rows")
    gen = cpu_generator(seed)
    j = torch.randint(0, n, (B,), generator=gen)
    keep = ones(B, n)
    keep[torch.arange(B), j] = 0.0
    Q = well_conditioned_psd(gen, B, n) * keep.unsqueeze(-1) * keep.unsqueeze(-2)
    p = torch.where(keep == 0, -1.0, randn(gen, B, n))
    t = rand(gen, B, m)
    G = torch.where(keep.unsqueeze(-2) == 0, -t.unsqueeze(-1), randn(gen, B, m, n))
    A = randn(gen, B, k, n) * keep.unsqueeze(-2)
    z0 = randn(gen, B, n)
    h = strictly_feasible_rhs(gen, G, z0)
    b = mv(A, z0)
    return finish("dual_infeasible", seed, "dual_infeasible", dtype, device, Q, p, G, h, A, b)
