"""Trained or random ReLU networks as plain lists of affine layers.

A network here is a ``torch.nn.Sequential`` of ``Linear`` layers with a ``ReLU`` between each
pair and a scalar output: f(x) = W_L relu(... relu(W_1 x + b_1) ...) + b_L. Everything in this
package works on the extracted ``(W, b)`` list in float64 so that LP data, MIP data and forward
passes agree to rounding.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn


@dataclass(frozen=True)
class ReluNet:
    """Affine layers (W_l, b_l) of a scalar-output ReLU MLP; ReLU after every layer but the last."""

    weights: tuple[Tensor, ...]
    biases: tuple[Tensor, ...]

    @property
    def input_dim(self) -> int:
        return self.weights[0].shape[1]

    @property
    def hidden_sizes(self) -> tuple[int, ...]:
        return tuple(W.shape[0] for W in self.weights[:-1])

    @property
    def n_hidden(self) -> int:
        return sum(self.hidden_sizes)

    @property
    def architecture(self) -> str:
        """'2-100-100-1' style label."""
        return "-".join(str(d) for d in (self.input_dim, *self.hidden_sizes, 1))

    @property
    def dtype(self) -> torch.dtype:
        return self.weights[0].dtype

    @property
    def device(self) -> torch.device:
        return self.weights[0].device

    def forward(self, x: Tensor) -> Tensor:
        """f(x) for a batch x (S, n0); returns (S,)."""
        return self.forward_with_preactivations(x)[0]

    def forward_with_preactivations(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        """f(x) (S,) and every hidden layer's pre-activation (S, n_l)."""
        if x.dim() != 2 or x.shape[1] != self.input_dim:
            raise ValueError(f"x must have shape (S, {self.input_dim}), got {tuple(x.shape)}")
        h = x.to(dtype=self.dtype, device=self.device)
        pre: list[Tensor] = []
        for W, b in zip(self.weights[:-1], self.biases[:-1], strict=True):
            a = h @ W.T + b
            pre.append(a)
            h = a.clamp_min(0)
        out = h @ self.weights[-1].T + self.biases[-1]
        return out[:, 0], pre

    def patterns(self, x: Tensor) -> Tensor:
        """Activation pattern (S, n_hidden) bool: True where the pre-activation is >= 0."""
        _, pre = self.forward_with_preactivations(x)
        return torch.cat(pre, dim=1) >= 0

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> ReluNet:
        return ReluNet(
            tuple(W.to(device=device, dtype=dtype) for W in self.weights),
            tuple(b.to(device=device, dtype=dtype) for b in self.biases),
        )


def from_sequential(model: nn.Module, dtype: torch.dtype = torch.float64) -> ReluNet:
    """Extract the affine layers of ``Sequential(Linear, ReLU, Linear, ..., Linear)``.

    Raises ValueError (naming ``model``) for any other layout: the LP and MIP encodings are exact
    only for this one.
    """
    if not isinstance(model, nn.Sequential):
        raise ValueError(f"model must be a torch.nn.Sequential, got {type(model).__name__}")
    layers = list(model)
    if not layers or len(layers) % 2 == 0:
        raise ValueError("model must alternate Linear and ReLU, starting and ending with Linear")
    weights, biases = [], []
    for i, layer in enumerate(layers):
        if i % 2 == 1:
            if not isinstance(layer, nn.ReLU):
                raise ValueError(f"model[{i}] must be nn.ReLU, got {type(layer).__name__}")
            continue
        if not isinstance(layer, nn.Linear):
            raise ValueError(f"model[{i}] must be nn.Linear, got {type(layer).__name__}")
        W = layer.weight.detach().to(dtype)
        b = layer.bias.detach().to(dtype) if layer.bias is not None else torch.zeros(
            W.shape[0], dtype=dtype, device=W.device
        )
        if weights and W.shape[1] != weights[-1].shape[0]:
            raise ValueError(f"model[{i}] takes {W.shape[1]} inputs but the previous layer gives "
                             f"{weights[-1].shape[0]}")
        weights.append(W)
        biases.append(b)
    if weights[-1].shape[0] != 1:
        raise ValueError(f"model must have a scalar output, its last Linear has {weights[-1].shape[0]}")
    if len(weights) < 2:
        raise ValueError("model must have at least one hidden ReLU layer")
    for W, b in zip(weights, biases, strict=True):
        if not (torch.isfinite(W).all() and torch.isfinite(b).all()):
            raise ValueError("model has NaN or Inf weights")
    return ReluNet(tuple(weights), tuple(biases))


def parse_architecture(spec: str) -> tuple[int, ...]:
    """'2-100-100-1' -> (2, 100, 100, 1); ValueError naming ``sizes`` when malformed."""
    try:
        dims = tuple(int(part) for part in spec.split("-"))
    except ValueError:
        raise ValueError(f"sizes entry {spec!r} must look like 2-100-100-1") from None
    if len(dims) < 3 or dims[-1] != 1 or min(dims) < 1:
        raise ValueError(f"sizes entry {spec!r} needs input, at least one hidden layer, and output 1")
    return dims


def build_mlp(dims: Sequence[int], seed: int = 0) -> nn.Sequential:
    """A fresh MLP with PyTorch's default initialisation, reproducible from ``seed``."""
    gen_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        layers: list[nn.Module] = []
        for i, (d_in, d_out) in enumerate(itertools.pairwise(dims)):
            layers.append(nn.Linear(d_in, d_out))
            if i < len(dims) - 2:
                layers.append(nn.ReLU())
        return nn.Sequential(*layers)
    finally:
        torch.random.set_rng_state(gen_state)


def random_network(dims: Sequence[int], seed: int = 0) -> ReluNet:
    return from_sequential(build_mlp(dims, seed))


# ----------------------------------------------------------------------------- test functions
def peaks(x: Tensor) -> Tensor:
    """MATLAB's 'peaks' surface on [-3, 3]^2 (several local maxima); x is (S, 2)."""
    u, v = x[:, 0], x[:, 1]
    return (
        3 * (1 - u) ** 2 * torch.exp(-(u**2) - (v + 1) ** 2)
        - 10 * (u / 5 - u**3 - v**5) * torch.exp(-(u**2) - v**2)
        - torch.exp(-((u + 1) ** 2) - v**2) / 3
    )


def neg_rastrigin(x: Tensor) -> Tensor:
    """Negated Rastrigin scaled to [-1, 1]^d boxes: many local maxima, global maximum 0 at 0."""
    y = 2.0 * x
    return -(10.0 * x.shape[1] + (y**2 - 10.0 * torch.cos(2 * math.pi * y)).sum(1)) / x.shape[1]


TEST_FUNCTIONS: dict[str, tuple[Callable[[Tensor], Tensor], float]] = {
    # name -> (function, half-width of the box it is fitted and optimized on)
    "peaks": (peaks, 3.0),
    "rastrigin": (neg_rastrigin, 1.0),
}


def train_network(
    dims: Sequence[int],
    function: str = "peaks",
    seconds: float = 5.0,
    seed: int = 0,
    n_points: int = 4096,
) -> tuple[ReluNet, float]:
    """Fit an MLP to a known test function with Adam for about ``seconds``.

    Returns the network and its final mean-squared training error. The box is
    [-w, w]^d with w from :data:`TEST_FUNCTIONS`.
    """
    if function not in TEST_FUNCTIONS:
        raise ValueError(f"function must be one of {sorted(TEST_FUNCTIONS)}, got {function!r}")
    if seconds <= 0:
        raise ValueError(f"seconds must be positive, got {seconds}")
    fn, width = TEST_FUNCTIONS[function]
    model = build_mlp(dims, seed)
    gen = torch.Generator().manual_seed(seed)
    x = (torch.rand(n_points, dims[0], generator=gen) * 2 - 1) * width
    y = fn(x)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    start = time.perf_counter()
    loss = torch.tensor(float("nan"))
    while time.perf_counter() - start < seconds:
        for idx in torch.randperm(n_points, generator=gen).split(256):
            optimizer.zero_grad()
            loss = ((model(x[idx])[:, 0] - y[idx]) ** 2).mean()
            loss.backward()
            optimizer.step()
    with torch.no_grad():
        mse = float(((model(x)[:, 0] - y) ** 2).mean())
    return from_sequential(model), mse


def interval_layer(W: Tensor, b: Tensor, h_lo: Tensor, h_hi: Tensor) -> tuple[Tensor, Tensor]:
    """Bounds (L, U) of W h + b for h in the box [h_lo, h_hi], by interval arithmetic."""
    Wp, Wn = W.clamp_min(0), W.clamp_max(0)
    return Wp @ h_lo + Wn @ h_hi + b, Wp @ h_hi + Wn @ h_lo + b


def interval_bounds(net: ReluNet, lo: Tensor, hi: Tensor) -> list[tuple[Tensor, Tensor]]:
    """Bounds (L_l, U_l) of every hidden pre-activation over the box, by interval arithmetic."""
    h_lo, h_hi = lo.to(net.dtype), hi.to(net.dtype)
    bounds = []
    for W, b in zip(net.weights[:-1], net.biases[:-1], strict=True):
        L, U = interval_layer(W, b, h_lo, h_hi)
        bounds.append((L, U))
        h_lo, h_hi = L.clamp_min(0), U.clamp_min(0)
    return bounds
