"""The family registry: a name -> :class:`Family` table filled by the family modules."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from qpbench.problem import QPBatch

Builder = Callable[[int, int, int, int, int, torch.dtype, "torch.device | str"], QPBatch]
EXPECTED_STATUSES = ("solved", "primal_infeasible", "dual_infeasible")


@dataclass(frozen=True)
class Family:
    """A named, seeded problem family.

    ``build(batch_size, n, m, k, seed, dtype, device)`` returns a QPBatch. ``sizes(n)`` gives
    the (m, k) used when the caller passes None; for families whose constraint counts follow
    from n (``ignores`` names them), it is also the only (m, k) the family produces.
    """

    name: str
    build: Builder
    description: str
    expected_status: str
    sizes: Callable[[int], tuple[int, int]]
    ignores: frozenset[str] = frozenset()
    min_n: int = 1

    def default_sizes(self, n: int) -> tuple[int, int]:
        return self.sizes(n)


FAMILIES: dict[str, Family] = {}


def register(
    name: str,
    *,
    description: str,
    sizes: Callable[[int], tuple[int, int]],
    expected_status: str = "solved",
    ignores: tuple[str, ...] = (),
    min_n: int = 1,
) -> Callable[[Builder], Builder]:
    """Decorator adding a builder function to :data:`FAMILIES` under ``name``."""
    if expected_status not in EXPECTED_STATUSES:
        raise ValueError(f"expected_status must be one of {EXPECTED_STATUSES}, got {expected_status!r}")

    def add(build: Builder) -> Builder:
        if name in FAMILIES:
            raise ValueError(f"family {name!r} is registered twice")
        FAMILIES[name] = Family(
            name=name,
            build=build,
            description=description,
            expected_status=expected_status,
            sizes=sizes,
            ignores=frozenset(ignores),
            min_n=min_n,
        )
        return build

    return add
