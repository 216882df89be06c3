"""Shared helpers of the problem generators.

Every family draws its data with a seeded ``torch.Generator`` on the CPU in float64 and only
then moves the finished tensors to the requested device and dtype, so the same seed gives the
same problems on every device (GPU random streams differ from the CPU's).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from qpbench.problem import QPBatch, as_batch

CPU = torch.device("cpu")
F64 = torch.float64


def cpu_generator(seed: int) -> torch.Generator:
    gen = torch.Generator(device=CPU)
    gen.manual_seed(seed)
    return gen


def randn(gen: torch.Generator, *shape: int) -> Tensor:
    return torch.randn(*shape, generator=gen, dtype=F64, device=CPU)


def rand(gen: torch.Generator, *shape: int) -> Tensor:
    return torch.rand(*shape, generator=gen, dtype=F64, device=CPU)


def eye(n: int) -> Tensor:
    return torch.eye(n, dtype=F64, device=CPU)


def zeros(*shape: int) -> Tensor:
    return torch.zeros(*shape, dtype=F64, device=CPU)


def ones(*shape: int) -> Tensor:
    return torch.ones(*shape, dtype=F64, device=CPU)


def mv(M: Tensor, v: Tensor) -> Tensor:
    """Batched matrix-vector product (B, r, c) x (B, c) -> (B, r)."""
    return (M @ v.unsqueeze(-1)).squeeze(-1)


def gram(M: Tensor) -> Tensor:
    """M M^T, symmetrized so the result is exactly symmetric despite rounding."""
    S = M @ M.transpose(-1, -2)
    return (S + S.transpose(-1, -2)).mul_(0.5)


def well_conditioned_psd(gen: torch.Generator, B: int, n: int) -> Tensor:
    """Q = M M^T / n + 0.1 I with M ~ N(0, 1): positive definite, eigenvalues in about [0.1, 4.1]."""
    Q = gram(randn(gen, B, n, n)).div_(n)
    Q.diagonal(dim1=-2, dim2=-1).add_(0.1)  # in place: B n^2 temporaries add up at B = 4096
    return Q


def require_at_most(name: str, value: int, bound: int, why: str) -> None:
    if value > bound:
        raise ValueError(f"{name} = {value} is too large: must be <= {bound} ({why})")


def shuffle_rows(gen: torch.Generator, M: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
    """Permute the rows of M (B, r, c) and v (B, r) of each problem independently, together."""
    B, r, c = M.shape
    order = torch.argsort(rand(gen, B, r), dim=-1)
    return torch.gather(M, 1, order.unsqueeze(-1).expand(B, r, c)), torch.gather(v, 1, order)


def strictly_feasible_rhs(gen: torch.Generator, G: Tensor, z0: Tensor) -> Tensor:
    """h = G z0 + s0 with slack s0 ~ U[0, 1) + 0.1, so z0 satisfies G z0 < h strictly."""
    return mv(G, z0) + rand(gen, *G.shape[:-1]) + 0.1


def finish(
    family: str,
    seed: int,
    expected_status: str,
    dtype: torch.dtype,
    device: torch.device | str,
    Q: Tensor,
    p: Tensor,
    G: Tensor | None = None,
    h: Tensor | None = None,
    A: Tensor | None = None,
    b: Tensor | None = None,
    **extra_meta: Any,
) -> QPBatch:
    """Move CPU float64 data to (device, dtype) and wrap it in a QPBatch with its metadata.

    Q is PSD by construction in every family, so only the cheap checks run here ("basic");
    the eigenvalue check would dominate generation time for large batches.
    """
    B = p.shape[0]
    n = p.shape[-1]
    m = 0 if G is None else G.shape[-2]
    k = 0 if A is None else A.shape[-2]

    moved = [None if t is None else t.to(device=device, dtype=dtype) for t in (Q, p, G, h, A, b)]
    meta = {
        "family": family,
        "seed": seed,
        "expected_status": expected_status,
        "batch_size": B,
        "n": n,
        "m": m,
        "k": k,
        **extra_meta,
    }
    return as_batch(*moved, check="basic", name=family, meta=meta)  # an empty block (m or k = 0) means no rows
