"""Seeded, batched problem families, feasible (or deliberately infeasible/unbounded) by
construction, reachable by name::

    from qpbench.generators import generate
    batch = generate("optnet_random", batch_size=64, n=50, seed=0)

Problems are drawn on the CPU in float64 with a seeded ``torch.Generator`` and then moved to
``device``/``dtype``, so a seed gives identical problems on every device. Each batch's ``meta``
holds family, seed, expected_status and sizes. See ``problems/families.md``.
"""

from __future__ import annotations

import torch

# Importing the family modules registers their families.
from qpbench.generators import applications, control, infeasible, random_qp  # noqa: F401
from qpbench.generators._registry import EXPECTED_STATUSES, FAMILIES, Family
from qpbench.problem import QPBatch, check_device

__all__ = ["EXPECTED_STATUSES", "FAMILIES", "Family", "family_names", "generate"]


def family_names() -> list[str]:
    """Registered family names, sorted."""
    return sorted(FAMILIES)


def _check_count(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def generate(
    family: str,
    batch_size: int,
    n: int,
    m: int | None = None,
    k: int | None = None,
    seed: int = 0,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str = "cpu",
) -> QPBatch:
    """A batch of ``batch_size`` problems of ``family`` with n variables, m inequality rows and
    k equality rows (None: the family's default for n).

    Families whose row counts follow from n (``FAMILIES[family].ignores``) accept m/k only as
    None or the value they would produce; anything else raises ValueError rather than being
    silently replaced.
    """
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {family_names()}, got {family!r}")
    fam = FAMILIES[family]
    batch_size = _check_count("batch_size", batch_size, 1)
    n = _check_count("n", n, fam.min_n)
    seed = _check_count("seed", seed, 0)
    if dtype not in (torch.float32, torch.float64):
        raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
    target = check_device(device)
    default_m, default_k = fam.default_sizes(n)
    sizes = {}
    for name, given, default in (("m", m, default_m), ("k", k, default_k)):
        if given is None:
            sizes[name] = default
            continue
        given = _check_count(name, given, 0)
        if name in fam.ignores and given != default:
            raise ValueError(
                f"{name} is determined by n for family {family!r} ({name} = {default} for n = {n}); pass {name}=None"
            )
        sizes[name] = given
    return fam.build(batch_size, n, sizes["m"], sizes["k"], seed, dtype, target)
