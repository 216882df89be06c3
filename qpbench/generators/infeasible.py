"""Deliberately infeasible and unbounded families, to test that a solver reports the right
per-problem status instead of a wrong answer or an exception."""

from __future__ import annotations

import torch

from qpbench.generators._common import (
    cpu_generator,
    eye,
    finish,
    gram,
    mv,
    rand,
    randn,
    strictly_feasible_rhs,
)
from qpbench.generators._registry import register
from qpbench.generators.random_qp import require_at_most, well_conditioned_psd
from qpbench.problem import QPBatch


def shuffle_rows(gen: torch.Generator, G: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Permute the rows of each problem independently (so the culprit rows are not always last)."""
    B, m, n = G.shape
    order = torch.argsort(rand(gen, B, m), dim=-1)
    return torch.gather(G, 1, order.unsqueeze(-1).expand(B, m, n)), torch.gather(h, 1, order)


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
    description="Unbounded below: Q has a null direction d with p'd < 0, and no constraint blocks d "
    "(G d <= 0, A d = 0) while z0 is feasible.",
    sizes=lambda n: (n, n // 4),
    expected_status="dual_infeasible",
    min_n=2,
)
def dual_infeasible(
    B: int, n: int, m: int, k: int, seed: int, dtype: torch.dtype, device: torch.device | str
) -> QPBatch:
    """d is a random unit vector and P = I - d d^T. Q = P (M M^T/n) P so Q d = 0;
    p = P p_rand - d so p'd = -1; G = G_rand P - t d^T with t ~ U[0,1) so G d = -t <= 0;
    A = A_rand P so A d = 0 (k <= n - 1). z0 ~ N(0,1) gives h = G z0 + s0 and b = A z0.
    Then z0 + a d is feasible for every a >= 0 and the objective falls by a along it:
    unbounded below, i.e. (Q d = 0, p'd < 0, G d <= 0, A d = 0) is a certificate of dual
    infeasibility by construction."""
    require_at_most("k", k, n - 1, "A d = 0 leaves at most n - 1 independent rows")
    gen = cpu_generator(seed)
    d = randn(gen, B, n)
    d = d / d.norm(dim=-1, keepdim=True)
    P = eye(n) - d.unsqueeze(-1) * d.unsqueeze(-2)
    Q = P @ gram(randn(gen, B, n, n)) / n @ P
    Q = 0.5 * (Q + Q.transpose(-1, -2))
    p = mv(P, randn(gen, B, n)) - d
    t = rand(gen, B, m)
    G = randn(gen, B, m, n) @ P - t.unsqueeze(-1) * d.unsqueeze(-2)
    A = randn(gen, B, k, n) @ P
    z0 = randn(gen, B, n)
    h = strictly_feasible_rhs(gen, G, z0)
    b = mv(A, z0)
    return finish("dual_infeasible", seed, "dual_infeasible", dtype, device, Q, p, G, h, A, b)
