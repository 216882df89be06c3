"""Linear regions of a ReLU network as a batch of LPs (Perakis & Tsiourvas 2022).

Fixing the activation pattern d (one bit per hidden neuron) makes the network affine,
f(x) = c_d . x + c0_d, on the polyhedron where every active neuron's pre-activation is >= 0,
every inactive one's is <= 0, and x lies in the box. Maximizing f over that region is an LP.

Two encodings, both as a minimizing :class:`~qpbench.problem.QPBatch`:

* **reduced** (variables x only): compose the layers per pattern, a_l(x) = M_l x + k_l with
  M_l = W_l D_{l-1} M_{l-1}; one inequality row per hidden neuron plus 2 n0 box rows. Small and
  dense: the form for the batched dense solver.
* **lifted** (variables x and every hidden layer's output h_l): h_l = D_l (W_l h_{l-1} + b_l) as
  equalities and the sign of each pre-activation as inequalities. No composition (building costs
  only copies) and its matrix has the network's own sparsity, so it suits sparse solvers; it is
  larger as a dense problem.

An optional proximal term eps * ||x - x_sample||^2 makes each problem a strictly convex QP whose
optimum is unique (the LP optimum nearest the sample, up to O(eps)); eps = 0 keeps the pure LP.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from qpbench.problem import QPBatch
from qpbench.relu.network import ReluNet

FORMS = ("reduced", "lifted")


def check_box(net: ReluNet, lo: Tensor, hi: Tensor) -> tuple[Tensor, Tensor]:
    """Validated (lo, hi) as float64 vectors on the network's device."""
    lo = torch.as_tensor(lo, dtype=net.dtype, device=net.device)
    hi = torch.as_tensor(hi, dtype=net.dtype, device=net.device)
    for name, t in (("lo", lo), ("hi", hi)):
        if t.shape != (net.input_dim,):
            raise ValueError(f"{name} must have shape ({net.input_dim},), got {tuple(t.shape)}")
        if not bool(torch.isfinite(t).all()):
            raise ValueError(f"{name} must be finite (the LP needs a bounded box)")
    if bool((lo > hi).any()):
        raise ValueError("lo must be <= hi in every coordinate")
    return lo, hi


def sample_box(lo: Tensor, hi: Tensor, count: int, generator: torch.Generator | None = None) -> Tensor:
    """``count`` points uniform in the box, (count, n0)."""
    if count < 1:
        raise ValueError(f"count must be >= 1, got {count}")
    u = torch.rand(count, lo.shape[0], generator=generator, dtype=lo.dtype, device="cpu").to(lo.device)
    return lo + u * (hi - lo)


@dataclass(frozen=True)
class UniquePatterns:
    """Distinct rows of a pattern matrix; ``inverse[i]`` is the row of sample i in ``patterns``,
    ``first[j]`` is the first sample with pattern j (a point inside region j)."""

    patterns: Tensor  # (P, n_hidden) bool
    inverse: Tensor  # (S,) long
    first: Tensor  # (P,) long


def unique_patterns(patterns: Tensor) -> UniquePatterns:
    """Deduplicate activation patterns so each linear region is solved once."""
    if patterns.dim() != 2 or patterns.dtype != torch.bool:
        raise ValueError(f"patterns must be a 2-D bool tensor, got {patterns.dtype} {tuple(patterns.shape)}")
    uniq, inverse = torch.unique(patterns, dim=0, return_inverse=True)
    order = torch.arange(inverse.numel(), device=inverse.device)
    # Smallest sample index per pattern: scatter-reduce 'amin' over the inverse map.
    first = torch.full((uniq.shape[0],), inverse.numel(), dtype=torch.long, device=inverse.device)
    first = first.scatter_reduce(0, inverse, order, reduce="amin")
    return UniquePatterns(uniq, inverse, first)


def _split_layers(net: ReluNet, patterns: Tensor) -> list[Tensor]:
    if patterns.dim() != 2 or patterns.shape[1] != net.n_hidden:
        raise ValueError(f"patterns must have shape (P, {net.n_hidden}), got {tuple(patterns.shape)}")
    return list(patterns.to(net.dtype).split(list(net.hidden_sizes), dim=1))


def affine_maps(net: ReluNet, patterns: Tensor) -> tuple[list[Tensor], list[Tensor], Tensor, Tensor]:
    """Per pattern, every hidden pre-activation as M_l x + k_l and the output as c . x + c0.

    Returns (M list of (P, n_l, n0), k list of (P, n_l), c (P, n0), c0 (P,)).
    """
    masks = _split_layers(net, patterns)
    P = patterns.shape[0]
    M = net.weights[0].unsqueeze(0).expand(P, -1, -1)
    k = net.biases[0].unsqueeze(0).expand(P, -1)
    Ms, ks = [M], [k]
    for mask, W, b in zip(masks, net.weights[1:], net.biases[1:], strict=True):
        # Inactive neurons pass nothing on: zero their rows before applying the next layer.
        M = W @ (mask.unsqueeze(-1) * M)
        k = (mask * k) @ W.T + b
        Ms.append(M)
        ks.append(k)
    c, c0 = Ms.pop()[:, 0, :], ks.pop()[:, 0]
    return Ms, ks, c, c0


def _signs(patterns: Tensor, dtype: torch.dtype) -> Tensor:
    """+1 for an inactive neuron (a <= 0), -1 for an active one (-a <= 0)."""
    return 1.0 - 2.0 * patterns.to(dtype)


def _proximal(centers: Tensor | None, proximal: float, n: int, like: Tensor) -> tuple[Tensor, Tensor]:
    """Q and the linear-term shift of eps * ||x - center||^2 on the first n variables.

    ``like`` is the (P, N) linear term. For eps = 0, Q is one shared zero matrix (an LP)."""
    if proximal < 0:
        raise ValueError(f"proximal must be >= 0, got {proximal}")
    P, N = like.shape
    shift = torch.zeros_like(like)
    if proximal == 0:
        return torch.zeros(N, N, dtype=like.dtype, device=like.device), shift
    if centers is None or centers.shape != (P, n):
        raise ValueError(f"centers must be given with shape ({P}, {n}) when proximal > 0")
    diag = torch.zeros(N, dtype=like.dtype, device=like.device)
    diag[:n] = 2.0 * proximal
    shift[:, :n] = -2.0 * proximal * centers.to(like)
    return torch.diag(diag), shift


def region_lps(
    net: ReluNet,
    patterns: Tensor,
    lo: Tensor,
    hi: Tensor,
    proximal: float = 0.0,
    centers: Tensor | None = None,
) -> QPBatch:
    """Reduced form: minimize -c_d . x (+ eps ||x - center||^2) over region d and the box.

    ``meta['offset']`` (P,) holds c0_d, so f at the optimum is -objective + offset (for eps = 0).
    """
    lo, hi = check_box(net, lo, hi)
    Ms, ks, c, c0 = affine_maps(net, patterns)
    sign = _signs(patterns, net.dtype)
    M, k = torch.cat(Ms, dim=1), torch.cat(ks, dim=1)
    eye = torch.eye(net.input_dim, dtype=net.dtype, device=net.device)
    G = torch.cat([sign.unsqueeze(-1) * M, torch.cat([eye, -eye]).expand(M.shape[0], -1, -1)], dim=1)
    h = torch.cat([-sign * k, torch.cat([hi, -lo]).expand(M.shape[0], -1)], dim=1)
    Q, shift = _proximal(centers, proximal, net.input_dim, c)
    return QPBatch(
        Q=Q,
        p=-c + shift,
        G=G,
        h=h,
        name=f"relu-regions-{net.architecture}",
        meta={"form": "reduced", "offset": c0, "proximal": proximal},
        check="basic",
    )


def lifted_region_lps(
    net: ReluNet,
    patterns: Tensor,
    lo: Tensor,
    hi: Tensor,
    proximal: float = 0.0,
    centers: Tensor | None = None,
) -> QPBatch:
    """Lifted form over (x, h_1, ..., h_{L-1}); x is the first n0 variables of the solution.

    Rows: sign_j (W_l h_{l-1} + b_l)_j <= 0 per neuron, box on x; equalities
    h_l = D_l (W_l h_{l-1} + b_l). ``meta['offset']`` is the last bias.
    """
    lo, hi = check_box(net, lo, hi)
    masks = _split_layers(net, patterns)
    P, n0, H = patterns.shape[0], net.input_dim, net.n_hidden
    n = n0 + H
    like = {"dtype": net.dtype, "device": net.device}
    G = torch.zeros(P, H + 2 * n0, n, **like)
    h = torch.zeros(P, H + 2 * n0, **like)
    A = torch.zeros(P, H, n, **like)
    b = torch.zeros(P, H, **like)
    sign = _signs(patterns, net.dtype)
    col_in, row = 0, 0  # columns of the layer's input variables; first row of the layer
    col_out = n0
    for mask, W, bias in zip(masks, net.weights[:-1], net.biases[:-1], strict=True):
        n_out, n_in = W.shape
        rows = slice(row, row + n_out)
        s = sign[:, rows]
        G[:, rows, col_in : col_in + n_in] = s.unsqueeze(-1) * W
        h[:, rows] = -s * bias
        # Equality h_l - D W h_{l-1} = D b: inactive rows become h_l = 0.
        A[:, rows, col_in : col_in + n_in] = -mask.unsqueeze(-1) * W
        A[:, rows, col_out : col_out + n_out] = torch.eye(n_out, **like)
        b[:, rows] = mask * bias
        col_in, col_out, row = col_out, col_out + n_out, row + n_out
    eye = torch.eye(n0, **like)
    G[:, H : H + n0, :n0] = eye
    G[:, H + n0 :, :n0] = -eye
    h[:, H : H + n0] = hi
    h[:, H + n0 :] = -lo
    p = torch.zeros(P, n, **like)
    p[:, n - net.hidden_sizes[-1] :] = -net.weights[-1][0]
    Q, shift = _proximal(centers, proximal, n0, p)
    offset = net.biases[-1][0].expand(P).clone()
    return QPBatch(
        Q=Q,
        p=p + shift,
        G=G,
        h=h,
        A=A,
        b=b,
        name=f"relu-regions-lifted-{net.architecture}",
        meta={"form": "lifted", "offset": offset, "proximal": proximal},
        check="basic",
    )


def cheaper_form(net: ReluNet, dense: bool) -> str:
    """Which encoding costs less to solve.

    A dense solver pays for dimensions: the reduced form has n0 variables and no equalities, the
    lifted one n0 + n_hidden variables and n_hidden equalities, so reduced always wins. A sparse
    solver pays for nonzeros: the reduced rows are dense (n_hidden x n0), the lifted ones hold
    the weights themselves.
    """
    if dense:
        return "reduced"
    reduced_nnz = net.n_hidden * net.input_dim
    lifted_nnz = 2 * sum(W.numel() for W in net.weights[:-1]) + net.n_hidden
    return "reduced" if reduced_nnz <= lifted_nnz else "lifted"
