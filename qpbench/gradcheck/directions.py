"""Perturbation directions for each of the six parameters.

A direction set for parameter P is a tensor (R, B, *S), S being P's shape per problem. Problems
are independent, so perturbing every problem of the batch at once along D[r] yields all B
per-problem derivatives from one pair of batch solves. For a shared P, D[r] is the same for every
problem, so the sum of the per-problem derivatives is the derivative of the total loss.

Q is only ever perturbed symmetrically: the objective sees only Q's symmetric part, and an
asymmetric Q is not a valid input. Gradients are therefore compared on symmetric directions, where
every correct gradient agrees whatever its antisymmetric part (qpth symmetrizes, others need not).
"""

from __future__ import annotations

import torch
from torch import Tensor

from qpbench.problem import QPBatch

MODES = ("full", "directional")


def _full_basis(name: str, shape: tuple[int, ...], like: Tensor) -> Tensor:
    """Unit perturbations of every entry, (E, *shape); Q uses E_ij + E_ji for i <= j."""
    if name == "Q":
        n = shape[0]
        rows, cols = torch.triu_indices(n, n, device=like.device)
        basis = like.new_zeros(rows.numel(), n, n)
        idx = torch.arange(rows.numel(), device=like.device)
        basis[idx, rows, cols] = 1.0
        basis[idx, cols, rows] = 1.0
        return basis
    numel = 1
    for size in shape:
        numel *= size
    return torch.eye(numel, dtype=like.dtype, device=like.device).reshape(numel, *shape)


def _random(name: str, shape: tuple[int, ...], count: int, batch_dims: int, gen: torch.Generator,
            like: Tensor) -> Tensor:
    """``count`` random directions (count, batch_dims, *shape), each of unit Frobenius norm
    (like the basis directions of full mode, so a step moves the data by the same amount
    whatever the parameter's size)."""
    d = torch.randn(count, batch_dims, *shape, generator=gen, dtype=torch.float64)
    if name == "Q":
        d = d + d.transpose(-1, -2)
    flat = d.reshape(count, batch_dims, -1)
    d = (flat / flat.norm(dim=-1, keepdim=True).clamp_min(1e-300)).reshape(d.shape)
    return d.to(device=like.device, dtype=like.dtype)


def directions(batch: QPBatch, name: str, mode: str, count: int, gen: torch.Generator) -> Tensor:
    """Directions (R, B, *S) for parameter ``name``; R = 0 when the parameter is empty."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    tensor = batch.expanded(name)
    B, shape = tensor.shape[0], tuple(tensor.shape[1:])
    like = tensor.to(torch.float64)
    if tensor[0].numel() == 0:
        return like.new_zeros(0, B, *shape)
    if mode == "full":
        basis = _full_basis(name, shape, like)
        return basis.unsqueeze(1).expand(basis.shape[0], B, *shape)
    if count < 1:
        raise ValueError(f"directions must be >= 1 in directional mode, got {count}")
    per_problem = B if batch.is_batched(name) else 1
    return _random(name, shape, count, per_problem, gen, like).expand(count, B, *shape)
