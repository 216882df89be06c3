"""1-D signal denoising (OptNet paper, section 5.3).

Clean signals are piecewise constant; the input adds Gaussian noise. Total-variation denoising

    z* = argmin_z  1/2 |z - y|^2 + lam |D z|_1        (D: first differences)

is written as a QP over x = [z, t] with t >= |D z| elementwise:

    minimize  1/2 |z|^2 - y'z + 1't   s.t.   D z - t <= 0,  -D z - t <= 0,

with lam folded into D (lam |Dz|_1 = |(lam D) z|_1), so the OptNet model learns a single matrix.
A tiny weight ``eps`` on t keeps Q positive definite for qpth; at the optimum t = |Dz|, so it
adds eps/2 |Dz|^2 to the objective, negligible at eps = 1e-6.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from qpbench.optnet.qp_layer import QPCallable

LENGTH = 100
T_WEIGHT = 1e-6


def piecewise_constant(
    count: int,
    seed: int,
    length: int = LENGTH,
    max_segments: int = 9,
    heights: tuple[int, int] = (10, 99),
    noise: float = 10.0,
) -> tuple[Tensor, Tensor]:
    """(noisy, clean), each (count, length) float64. Each signal has 1..max_segments constant
    pieces (the paper's "1-9 breakpoints" counts segment starts), integer heights in
    ``heights`` (inclusive), and N(0, noise^2) noise."""
    if count < 1 or length < 2:
        raise ValueError(f"count must be >= 1 and length >= 2, got {count}, {length}")
    if not 1 <= max_segments <= length:
        raise ValueError(f"max_segments must be in [1, length], got {max_segments}")
    rng = np.random.default_rng(seed)
    clean = np.empty((count, length))
    for row in clean:
        segments = int(rng.integers(1, max_segments + 1))
        starts = np.sort(rng.choice(np.arange(1, length), segments - 1, replace=False))
        levels = rng.integers(heights[0], heights[1] + 1, segments)
        row[:] = np.repeat(levels, np.diff(np.concatenate([[0], starts, [length]])))
    noisy = clean + rng.normal(0.0, noise, clean.shape)
    return torch.from_numpy(noisy), torch.from_numpy(clean)


def difference_matrix(length: int = LENGTH, dtype: torch.dtype = torch.float64) -> Tensor:
    """(length-1, length) first differences: (D z)_i = z_{i+1} - z_i."""
    eye = torch.eye(length, dtype=dtype)
    return eye[1:] - eye[:-1]


def tv_qp(y: Tensor, D: Tensor, t_weight: float = T_WEIGHT) -> tuple[Tensor, ...]:
    """(Q, p, G, h, A, b) of the QP above; Q, G, h, A, b shared by the batch, p batched."""
    n = D.shape[1]
    r = D.shape[0]
    like = {"dtype": D.dtype, "device": D.device}
    Q = torch.block_diag(torch.eye(n, **like), t_weight * torch.eye(r, **like))
    p = torch.cat([-y.to(D.dtype), torch.ones(y.shape[0], r, **like)], dim=1)
    minus_eye = -torch.eye(r, **like)
    G = torch.cat([torch.cat([D, minus_eye], 1), torch.cat([-D, minus_eye], 1)], 0)
    h = torch.zeros(2 * r, **like)
    A = torch.zeros(0, n + r, **like)
    b = torch.zeros(0, **like)
    return Q, p, G, h, A, b


class OptNetDenoiser(nn.Module):
    """Denoise by the QP above with a learned D: "pure OptNet" starts from a random D,
    "OptNet tuned from TV" from lam * finite differences."""

    def __init__(self, qp: QPCallable, D_init: Tensor) -> None:
        super().__init__()
        self.qp = qp
        self.D = nn.Parameter(D_init.detach().clone().to(torch.float64))

    @classmethod
    def random(
        cls, qp: QPCallable, length: int = LENGTH, scale: float = 0.3, seed: int = 0
    ) -> OptNetDenoiser:
        gen = torch.Generator().manual_seed(seed)
        return cls(qp, scale * torch.randn(length - 1, length, generator=gen, dtype=torch.float64))

    @classmethod
    def from_tv(cls, qp: QPCallable, lam: float, length: int = LENGTH) -> OptNetDenoiser:
        return cls(qp, lam * difference_matrix(length))

    def forward(self, y: Tensor) -> Tensor:
        x = self.qp(*tv_qp(y, self.D))
        return x[:, : self.D.shape[1]].to(y.dtype)


class FCDenoiser(nn.Module):
    """The paper's fully-connected baseline: one ReLU hidden layer, signal to signal. Signals
    are divided by ``scale`` going in and multiplied coming out, so that default initialization
    and learning rates suit heights of 10..99."""

    def __init__(self, length: int = LENGTH, hidden: int = 500, scale: float = 50.0, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.scale = scale
        self.net = nn.Sequential(
            nn.Linear(length, hidden, dtype=torch.float64),
            nn.ReLU(),
            nn.Linear(hidden, length, dtype=torch.float64),
        )

    def forward(self, y: Tensor) -> Tensor:
        return (self.scale * self.net(y.to(torch.float64) / self.scale)).to(y.dtype)


def tv_denoise(qp: QPCallable, y: Tensor, lam: float, batch_size: int = 250) -> Tensor:
    """Total-variation denoising of each row of y with weight lam (no gradients)."""
    D = lam * difference_matrix(y.shape[1]).to(y.device)
    with torch.no_grad():
        parts = [qp(*tv_qp(y[i : i + batch_size], D))[:, : y.shape[1]] for i in range(0, len(y), batch_size)]
    return torch.cat(parts)


def best_tv_lambda(
    qp: QPCallable, noisy: Tensor, clean: Tensor, grid: list[float]
) -> tuple[float, dict[float, float]]:
    """The lam of ``grid`` with the least mean squared error on (noisy, clean), and every MSE."""
    if not grid:
        raise ValueError("grid must hold at least one lambda")
    mse = {lam: float(((tv_denoise(qp, noisy, lam) - clean) ** 2).mean()) for lam in grid}
    return min(mse, key=mse.__getitem__), mse


def mse_metric(prediction: Tensor, x: Tensor, y: Tensor) -> dict[str, float]:
    return {"mse": float(((prediction - y) ** 2).mean())}
