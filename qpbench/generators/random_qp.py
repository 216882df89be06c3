"""Random dense QP families: OptNet's benchmark QPs and variations on which blocks are present
and how degenerate Q and A are. All feasible and bounded by construction (see each docstring)."""

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
    require_at_most,
    shuffle_rows,
    strictly_feasible_rhs,
    well_conditioned_psd,
    zeros,
)
from qpbench.generators._registry import register
from qpbench.problem import QPBatch


@register(
    "optnet_random",
    description="OptNet's timing QPs: Q = L L^T + 1e-3 I (L = tril(U[0,1)) + I), Gaussian G and p, "
    "h = G z0 + 1; inequalities only.",
    sizes=lambda n: (n, 0),
    ignores=("k",),
)
def optnet_random(B: int, n: int, m: int, k: int, seed: int, dtype: torch.dtype, device: torch.device | str) -> QPBatch:
    """The random QPs of OptNet's solver timings (Amos & Kolter 2017), as drawn in
    locuslab/optnet ``profile/optnet-forward.py``: L = tril(U[0,1)^{n x n}) + I,
    Q = L L^T + 1e-3 I, G ~ N(0,1)^{m x n}, z0 ~ N(0,1), slack s0 = 1 (all ones there, not
    random), h = G z0 + s0, p ~ N(0,1). No equalities here (the original adds Gaussian A with
    b = A z0; use ``random_eq`` for that). Feasible: z0 satisfies G z0 < h. Bounded: Q is PD.
    Unlike the original, which shares Q, G, h across the batch and varies only p, every problem
    draws all of its data.
    """
    gen = cpu_generator(seed)
    L = torch.tril(rand(gen, B, n, n)) + eye(n)
    Q = gram(L) + 1e-3 * eye(n)
    G = randn(gen, B, m, n)
    z0 = randn(gen, B, n)
    h = mv(G, z0) + 1.0
    p = randn(gen, B, n)
    return finish("optnet_random", seed, "solved", dtype, device, Q, p, G, h)


def _gaussian_qp(
    family: str, B: int, n: int, m: int, k: int, seed: int, dtype: torch.dtype, device: torch.device | str
) -> QPBatch:
    """The body of ``inequality_only`` (k = 0), ``random_eq`` and ``equality_only`` (m = 0).

    Draws Q, p, G, A, z0, s0 in this order; an empty block (m or k = 0) draws nothing from the
    generator, so each family's stream is the one it would draw without that block.
    """
    require_at_most("k", k, n, "A must have full row rank")
    gen = cpu_generator(seed)
    Q = well_conditioned_psd(gen, B, n)
    p = randn(gen, B, n)
    G = randn(gen, B, m, n)
    A = randn(gen, B, k, n)
    z0 = randn(gen, B, n)
    h = strictly_feasible_rhs(gen, G, z0)
    b = mv(A, z0)
    return finish(family, seed, "solved", dtype, device, Q, p, G, h, A, b)


@register(
    "inequality_only",
    description="Well-conditioned PD Q, Gaussian G with twice as many rows as variables by default, "
    "h = G z0 + s0 (s0 > 0); no equalities.",
    sizes=lambda n: (2 * n, 0),
    ignores=("k",),
)
def inequality_only(
    B: int, n: int, m: int, k: int, seed: int, dtype: torch.dtype, device: torch.device | str
) -> QPBatch:
    """Q = M M^T/n + 0.1 I, p, G, z0 ~ N(0,1), h = G z0 + s0 with s0 ~ U[0,1) + 0.1.
    Feasible: z0 is strictly feasible. Bounded: Q is PD. With m > n many rows are active."""
    return _gaussian_qp("inequality_only", B, n, m, 0, seed, dtype, device)


@register(
    "random_eq",
    description="Well-conditioned PD Q, Gaussian inequalities h = G z0 + s0 and equalities b = A z0 "
    "sharing the same interior point z0.",
    sizes=lambda n: (n, n // 2),
)
def random_eq(B: int, n: int, m: int, k: int, seed: int, dtype: torch.dtype, device: torch.device | str) -> QPBatch:
    """As ``inequality_only`` plus A ~ N(0,1)^{k x n} (full row rank almost surely, k <= n) and
    b = A z0. Feasible: z0 satisfies both blocks, the inequalities strictly. Bounded: Q is PD."""
    return _gaussian_qp("random_eq", B, n, m, k, seed, dtype, device)


@register(
    "equality_only",
    description="Well-conditioned PD Q with Gaussian equalities b = A z0 only (m = 0): "
    "the solution comes from one linear KKT system.",
    sizes=lambda n: (0, max(1, n // 2)),
    ignores=("m",),
)
def equality_only(B: int, n: int, m: int, k: int, seed: int, dtype: torch.dtype, device: torch.device | str) -> QPBatch:
    """Q = M M^T/n + 0.1 I, A ~ N(0,1)^{k x n} with k <= n, b = A z0. Feasible: z0.
    Bounded: Q is PD. No inequalities, so an interior-point method has nothing to centre."""
    return _gaussian_qp("equality_only", B, n, 0, k, seed, dtype, device)


@register(
    "box",
    description="Well-conditioned PD Q with lower and upper bounds l < z < u written as the 2n rows "
    "[I; -I] z <= [u; -l] (G shared by the batch).",
    sizes=lambda n: (2 * n, 0),
    ignores=("m", "k"),
)
def box(B: int, n: int, m: int, k: int, seed: int, dtype: torch.dtype, device: torch.device | str) -> QPBatch:
    """Bounds l ~ -U[0.5, 1.5), u ~ U[0.5, 1.5) around 0, p ~ N(0,1) so that the unconstrained
    minimizer usually leaves the box and several bounds are active. G = [I; -I] is one shared
    (2n, n) tensor; h = [u; -l] is per problem. Feasible: z = 0 lies strictly inside.
    Bounded: Q is PD (and the box is bounded anyway)."""
    gen = cpu_generator(seed)
    Q = well_conditioned_psd(gen, B, n)
    p = randn(gen, B, n)
    lower = -(0.5 + rand(gen, B, n))
    upper = 0.5 + rand(gen, B, n)
    G = torch.cat([eye(n), -eye(n)])
    h = torch.cat([upper, -lower], dim=-1)
    return finish("box", seed, "solved", dtype, device, Q, p, G, h)


@register(
    "lp",
    description="Linear programs (Q = 0): Gaussian rows h = G z0 + s0 plus a box |z_i| <= 1 + U[0,1) "
    "(the last 2n rows of G) and equalities b = A z0.",
    sizes=lambda n: (3 * n, n // 4),
    min_n=1,
)
def lp(B: int, n: int, m: int, k: int, seed: int, dtype: torch.dtype, device: torch.device | str) -> QPBatch:
    """Q = 0, p ~ N(0,1). G stacks m - 2n Gaussian rows and the box rows [I; -I]; m counts both,
    so m >= 2n. z0 ~ U(-0.5, 0.5) inside the box gives h = G z0 + s0 and b = A z0 (k <= n).
    Feasible: z0. Bounded: the feasible set lies in the box, so the linear objective has a
    finite minimum (at a vertex)."""
    if m < 2 * n:
        raise ValueError(f"m = {m} is too small: the lp family needs m >= 2n = {2 * n} (box rows)")
    require_at_most("k", k, n, "A must have full row rank")
    gen = cpu_generator(seed)
    Q = zeros(B, n, n)
    p = randn(gen, B, n)
    z0 = rand(gen, B, n) - 0.5
    G_free = randn(gen, B, m - 2 * n, n)
    h_free = strictly_feasible_rhs(gen, G_free, z0)
    radius = 1.0 + rand(gen, B, n)
    G = torch.cat([G_free, eye(n).expand(B, n, n), -eye(n).expand(B, n, n)], dim=1)
    h = torch.cat([h_free, radius, radius], dim=-1)
    A = randn(gen, B, k, n)
    b = mv(A, z0)
    return finish("lp", seed, "solved", dtype, device, Q, p, G, h, A, b)


def permute_columns(M: torch.Tensor, order: torch.Tensor) -> torch.Tensor:
    """M[b, :, order[b]] for every problem b."""
    return torch.gather(M, -1, order.unsqueeze(-2).expand(*M.shape[:-1], order.shape[-1]))


def permute_symmetric(M: torch.Tensor, order: torch.Tensor) -> torch.Tensor:
    """M[b][order[b]][:, order[b]]: the same permutation of rows and columns."""
    return permute_columns(permute_columns(M, order).transpose(-1, -2), order)


# Powers of two (with signs): multiplying by them commutes with rounding to float32, so rows
# built as such multiples stay exact copies after a dtype change.
EXACT_FACTORS = (1.0, -1.0, 2.0, -2.0, 0.5, -0.5)


@register(
    "rank_deficient",
    description="Singular PSD Q (rank n/2) and rank-deficient A (rank k/2) with consistent b; p is "
    "chosen so that a known point satisfies the KKT conditions, so the problem is bounded.",
    sizes=lambda n: (n, n // 2),
    min_n=2,
)
def rank_deficient(
    B: int, n: int, m: int, k: int, seed: int, dtype: torch.dtype, device: torch.device | str
) -> QPBatch:
    """Q has rank r = max(1, n // 2): a well-conditioned PD r x r block C C^T / (2r)
    (C ~ N(0,1)^{r x 2r}) padded with zero rows and columns, then symmetrically permuted.
    A has rank r_A = max(1, min(k // 2, n - 1)): r_A Gaussian rows, and each further row a
    copy of one of them times +-1, +-2 or +-1/2, rows shuffled. Both structures are exact, so
    they survive rounding to float32 (singular values near zero would not).

    A singular Q with a random p would usually be unbounded, so the data are built backwards
    from an optimal primal-dual point: z* ~ N(0,1); a = min(m // 2, n - r_A - 1) random rows
    are active (slack 0, multiplier U[0,1) + 0.1), the others inactive (slack U[0,1) + 0.1,
    multiplier 0); nu* ~ N(0,1); h = G z* + s*, b = A z* (copied rows get copied entries, so
    b stays consistent), p = -(Q z* + G^T lam* + A^T nu*). Then (z*, lam*, nu*) satisfies the
    KKT conditions of this convex QP, so it is feasible and its minimum is attained (z need
    not be unique; the objective is). The active rows and A's independent rows number fewer
    than n, so they stay satisfiable after the data are rounded.
    """
    gen = cpu_generator(seed)
    r = max(1, n // 2)
    Q = zeros(B, n, n)
    Q[:, :r, :r] = gram(randn(gen, B, r, 2 * r)) / (2 * r)
    Q = permute_symmetric(Q, torch.argsort(rand(gen, B, n), dim=-1))

    rank_A = max(1, min(k // 2, n - 1)) if k else 0
    z_opt = randn(gen, B, n)
    E = randn(gen, B, rank_A, n)
    source = torch.randint(0, max(rank_A, 1), (B, k - rank_A), generator=gen)
    factor = torch.tensor(EXACT_FACTORS, dtype=torch.float64)[
        torch.randint(0, len(EXACT_FACTORS), (B, k - rank_A), generator=gen)
    ]
    b_E = mv(E, z_opt)
    A = torch.cat([E, factor.unsqueeze(-1) * torch.gather(E, 1, source.unsqueeze(-1).expand(-1, -1, n))], 1)
    b = torch.cat([b_E, factor * torch.gather(b_E, 1, source)], dim=-1)
    A, b = shuffle_rows(gen, A, b)

    G = randn(gen, B, m, n)
    n_active = min(m // 2, max(0, n - rank_A - 1))
    active = torch.argsort(rand(gen, B, m), dim=-1) < n_active
    slack = torch.where(active, 0.0, rand(gen, B, m) + 0.1)
    lam = torch.where(active, rand(gen, B, m) + 0.1, 0.0)
    nu = randn(gen, B, k)
    h = mv(G, z_opt) + slack
    p = -(mv(Q, z_opt) + mv(G.transpose(1, 2), lam) + mv(A.transpose(1, 2), nu))
    return finish("rank_deficient", seed, "solved", dtype, device, Q, p, G, h, A, b, rank_Q=r, rank_A=rank_A)
