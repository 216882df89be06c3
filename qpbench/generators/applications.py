"""Dense, batched versions of the OSQP benchmark suite's application classes (Stellato et al.,
"OSQP: an operator splitting solver for quadratic programs", 2020; osqp/osqp_benchmarks
``problem_classes/``): portfolio, lasso, huber and svm.

The originals are sparse and grow a data dimension 100x the feature dimension; here n is the
TOTAL number of QP variables (features, data residuals and auxiliary variables together), and
the natural sizes are derived from it with smaller ratios that suit dense batched solvers. Each
docstring gives the split. Data densities follow the originals (dense tensors with zeros).
Every class is feasible and bounded below by construction, whatever the random data.
"""

from __future__ import annotations

import torch
from torch import Tensor

from qpbench.generators._common import cpu_generator, eye, finish, mv, ones, rand, randn, zeros
from qpbench.generators._registry import register
from qpbench.problem import QPBatch


def sparse_randn(gen: torch.Generator, density: float, *shape: int) -> Tensor:
    """Gaussian entries kept with probability ``density`` (dense storage)."""
    values = randn(gen, *shape)
    return values * (rand(gen, *shape) < density)


def blocks(rows: list[list[Tensor]]) -> Tensor:
    """Assemble a batched block matrix from (B, r, c) blocks."""
    return torch.cat([torch.cat(row, dim=-1) for row in rows], dim=-2)


def portfolio_sizes(n: int) -> tuple[int, int]:
    """(assets, factors) with factors = max(1, n // 10)."""
    factors = max(1, n // 10)
    return n - factors, factors


@register(
    "portfolio",
    description="Factor-model portfolio: minimize x'Dx + y'y - mu'x s.t. 1'x = 1, F'x = y, 0 <= x <= 1.",
    sizes=lambda n: (2 * portfolio_sizes(n)[0], 1 + portfolio_sizes(n)[1]),
    ignores=("m", "k"),
    min_n=2,
)
def portfolio(B: int, n: int, m: int, k: int, seed: int, dtype: torch.dtype, device: torch.device | str) -> QPBatch:
    """Variables z = [x (assets), y (factors)], factors = max(1, n // 10), assets = n - factors.
    D = diag(U[0,1) * sqrt(factors)), F ~ N(0,1) at density 0.5, mu ~ N(0,1), risk aversion 1.
    Q = diag(2D, 2I), p = [-mu, 0]; equalities 1'x = 1 and F'x - y = 0 (k = 1 + factors);
    inequalities 0 <= x <= 1 (m = 2 assets; G and h shared by the batch).
    Feasible: x = 1/assets, y = F'x. Bounded: x lies in a box and y is fixed by x."""
    assets, factors = portfolio_sizes(n)
    gen = cpu_generator(seed)
    F = sparse_randn(gen, 0.5, B, assets, factors)
    D = rand(gen, B, assets) * factors**0.5
    mu = randn(gen, B, assets)
    Q = torch.diag_embed(torch.cat([2 * D, 2 * ones(B, factors)], dim=-1))
    p = torch.cat([-mu, zeros(B, factors)], dim=-1)
    A = blocks(
        [
            [ones(B, 1, assets), zeros(B, 1, factors)],
            [F.transpose(1, 2), -eye(factors).expand(B, factors, factors)],
        ]
    )
    b = torch.cat([ones(B, 1), zeros(B, factors)], dim=-1)
    G = torch.cat([eye(n)[:assets], -eye(n)[:assets]])
    h = torch.cat([ones(assets), zeros(assets)])
    return finish("portfolio", seed, "solved", dtype, device, Q, p, G, h, A, b, assets=assets, factors=factors)


def lasso_sizes(n: int) -> tuple[int, int]:
    """(features, data points) with features = max(1, n // 6), data = n - 2 features."""
    features = max(1, n // 6)
    return features, n - 2 * features


@register(
    "lasso",
    description="Lasso regression: minimize y'y + lambda 1't s.t. y = A_d x - b_d, -t <= x <= t.",
    sizes=lambda n: (2 * lasso_sizes(n)[0], lasso_sizes(n)[1]),
    ignores=("m", "k"),
    min_n=3,
)
def lasso(B: int, n: int, m: int, k: int, seed: int, dtype: torch.dtype, device: torch.device | str) -> QPBatch:
    """Variables z = [x (features), y (data), t (features)], features = max(1, n // 6),
    data = n - 2 features (about 4 data points per feature; the original uses 100).
    A_d ~ N(0,1) at density 0.5, sparse true x with N(0,1)/sqrt(features) entries, b_d =
    A_d x_true + N(0,1) noise, lambda = ||A_d' b_d||_inf / 5. Q = diag(0, 2I, 0),
    p = [0, 0, lambda 1]; equalities A_d x - y = b_d (k = data); inequalities x - t <= 0 and
    -x - t <= 0 (m = 2 features; shared). Feasible: any x with y = A_d x - b_d, t = |x|.
    Bounded: the objective is a sum of squares plus lambda t >= lambda |x| >= 0."""
    features, data = lasso_sizes(n)
    gen = cpu_generator(seed)
    Ad = sparse_randn(gen, 0.5, B, data, features)
    x_true = (rand(gen, B, features) > 0.5) * randn(gen, B, features) / features**0.5
    bd = mv(Ad, x_true) + randn(gen, B, data)
    lam = mv(Ad.transpose(1, 2), bd).abs().amax(-1, keepdim=True) / 5
    Q = torch.diag_embed(torch.cat([zeros(B, features), 2 * ones(B, data), zeros(B, features)], dim=-1))
    p = torch.cat([zeros(B, features + data), lam.expand(B, features)], dim=-1)
    A = torch.cat([Ad, -eye(data).expand(B, data, data), zeros(B, data, features)], dim=-1)
    I_f = eye(features)
    G = blocks([[I_f, zeros(features, data), -I_f], [-I_f, zeros(features, data), -I_f]])
    h = zeros(2 * features)
    return finish("lasso", seed, "solved", dtype, device, Q, p, G, h, A, bd, features=features, data=data)


def huber_sizes(n: int) -> tuple[int, int]:
    """(features, data points): data = (n - max(1, n // 7)) // 3, features = n - 3 data."""
    data = (n - max(1, n // 7)) // 3
    return n - 3 * data, data


@register(
    "huber",
    description="Huber regression: minimize 1/2 u'u + 1'(r + s) s.t. A_d x - u - r + s = b_d, r, s >= 0.",
    sizes=lambda n: (2 * huber_sizes(n)[1], huber_sizes(n)[1]),
    ignores=("m", "k"),
    min_n=4,
)
def huber(B: int, n: int, m: int, k: int, seed: int, dtype: torch.dtype, device: torch.device | str) -> QPBatch:
    """Variables z = [x (features), u, r, s (data each)], data = (n - max(1, n // 7)) // 3,
    features = n - 3 data (about 2 data points per feature; the original uses 100).
    A_d ~ N(0,1) at density 0.5, x_true ~ N(0,1)/sqrt(features), b_d = A_d x_true + noise that
    is N(0, 0.25) for 95% of points and U[0, 10) outliers for the rest. Q = diag(0, I, 0, 0),
    p = [0, 0, 1, 1]; equalities A_d x - u - r + s = b_d (k = data); r >= 0, s >= 0 as rows
    -r <= 0, -s <= 0 (m = 2 data; shared). Feasible: x = 0, u = -b_d, r = s = 0.
    Bounded: 1/2 u'u + 1'(r + s) >= 0 on the feasible set."""
    features, data = huber_sizes(n)
    gen = cpu_generator(seed)
    Ad = sparse_randn(gen, 0.5, B, data, features)
    x_true = randn(gen, B, features) / features**0.5
    inlier = rand(gen, B, data) < 0.95
    noise = torch.where(inlier, 0.5 * randn(gen, B, data), 10.0 * rand(gen, B, data))
    bd = mv(Ad, x_true) + noise
    Q = torch.diag_embed(torch.cat([zeros(B, features), ones(B, data), zeros(B, 2 * data)], dim=-1))
    p = torch.cat([zeros(B, features + data), ones(B, 2 * data)], dim=-1)
    I_d = eye(data).expand(B, data, data)
    A = torch.cat([Ad, -I_d, -I_d, I_d], dim=-1)
    G = torch.cat([zeros(2 * data, features + data), -eye(2 * data)], dim=-1)
    h = zeros(2 * data)
    return finish("huber", seed, "solved", dtype, device, Q, p, G, h, A, bd, features=features, data=data)


def svm_sizes(n: int) -> tuple[int, int]:
    """(features, data points) with features = max(1, n // 3), data = n - features."""
    features = max(1, n // 3)
    return features, n - features


@register(
    "svm",
    description="Soft-margin SVM: minimize 1/2 x'x + 1/2 1't s.t. t >= diag(y) A_d x + 1, t >= 0.",
    sizes=lambda n: (2 * svm_sizes(n)[1], 0),
    ignores=("m", "k"),
    min_n=2,
)
def svm(B: int, n: int, m: int, k: int, seed: int, dtype: torch.dtype, device: torch.device | str) -> QPBatch:
    """Variables z = [x (features), t (data)], features = max(1, n // 3), data = n - features
    (2 data points per feature; the original uses 100). Labels y: the first ceil(data/2)
    points +1, the rest -1; rows of A_d are N(0,1)/sqrt(features) at density 0.15, shifted by
    +-1/features on their nonzeros towards their class. Q = diag(I, 0), p = [0, 1/2 1];
    inequalities diag(y) A_d x - t <= -1 and -t <= 0 (m = 2 data). Feasible: x = 0, t = 1.
    Bounded: the objective is >= 0 when t >= 0."""
    features, data = svm_sizes(n)
    gen = cpu_generator(seed)
    positives = (data + 1) // 2
    labels = torch.cat([ones(positives), -ones(data - positives)])
    values = randn(gen, B, data, features)
    mask = (rand(gen, B, data, features) < 0.15).double()
    Ad = values * mask / features**0.5 + labels.view(1, data, 1) * mask / features
    Q = torch.diag_embed(torch.cat([ones(B, features), zeros(B, data)], dim=-1))
    p = torch.cat([zeros(B, features), 0.5 * ones(B, data)], dim=-1)
    I_d = eye(data).expand(B, data, data)
    G = blocks([[labels.view(1, data, 1) * Ad, -I_d], [zeros(B, data, features), -I_d]])
    h = torch.cat([-ones(data), zeros(data)])
    return finish("svm", seed, "solved", dtype, device, Q, p, G, h, features=features, data=data)
