"""Per-problem state of the iteration, as dataclasses of tensors whose first dimension is the
working set: compaction selects rows of every field at once (``select_rows``)."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import TypeVar

import torch
from torch import Tensor

T = TypeVar("T")


def tensor_fields(state: object) -> list[str]:
    """The names of a dataclass's tensor fields, in declaration order."""
    return [f.name for f in fields(state) if isinstance(getattr(state, f.name), Tensor)]  # type: ignore[arg-type]


def select_rows(state: T, idx: Tensor) -> T:
    """A copy of a dataclass with every tensor field restricted to the rows ``idx``."""
    return replace(state, **{name: getattr(state, name)[idx] for name in tensor_fields(state)})  # type: ignore[type-var]


def tensors_of(state: object) -> tuple[Tensor, ...]:
    """The tensor fields' values (``tensor_fields`` order): a dataclass as a flat tuple."""
    return tuple(getattr(state, name) for name in tensor_fields(state))


def with_tensors(state: T, values: tuple[Tensor, ...]) -> T:
    """A copy of a dataclass with its tensor fields set to ``values`` (``tensors_of``'s order)."""
    return replace(state, **dict(zip(tensor_fields(state), values, strict=True)))  # type: ignore[type-var]


@dataclass
class Iterate:
    """(z, s, lam, nu) packed in one (B, n + 2m + k) tensor, so that the per-iteration updates
    (step, finiteness test, keeping the best iterate) are one op each instead of four."""

    x: Tensor
    n: int
    m: int

    @staticmethod
    def pack(z: Tensor, s: Tensor, lam: Tensor, nu: Tensor) -> Iterate:
        return Iterate(torch.cat([z, s, lam, nu], dim=1), z.shape[1], s.shape[1])

    @property
    def z(self) -> Tensor:
        return self.x[..., : self.n]

    @property
    def s(self) -> Tensor:
        return self.x[..., self.n : self.n + self.m]

    @property
    def lam(self) -> Tensor:
        return self.x[..., self.n + self.m : self.n + 2 * self.m]

    @property
    def nu(self) -> Tensor:
        return self.x[..., self.n + 2 * self.m :]

    @property
    def y(self) -> Tensor:
        """[lam, nu]: all multipliers, in the order of C = [G; A]."""
        return self.x[..., self.n + self.m :]

    @property
    def s_lam(self) -> Tensor:
        """[s, lam]: the variables that must stay positive."""
        return self.x[..., self.n : self.n + 2 * self.m]

    def mu(self) -> Tensor:
        """(B,) average complementarity s'lam / m (0 without inequalities)."""
        if not self.m:
            return self.x.new_zeros(self.x.shape[0])
        return (self.s * self.lam).sum(-1) / self.m
