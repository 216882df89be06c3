"""The reduced KKT form's factorization buffers: reused from one factorization to the next, and a
compacted system (whose buffers are prefixes of the old ones) factors and solves its problems as a
system built for them alone would."""

from __future__ import annotations

import pytest
import torch

from qpbench.generators import generate
from qpbench.problem import QPBatch
from qpbench.solver.kkt import ReducedKKT
from qpbench.solver.result import WorkCounts
from qpbench.solver.scaling import equilibrate


def _reduced_system(batch: QPBatch) -> ReducedKKT:
    P, _ = equilibrate(batch, 10)
    return ReducedKKT(P, WorkCounts())


def _weights(b: int, m: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    w_inv = torch.rand(b, m, generator=g, dtype=torch.float64) + 0.1
    return w_inv, torch.full((b,), 1e-6, dtype=torch.float64), torch.full((b,), 1e-4, dtype=torch.float64)


def test_factorizations_reuse_one_buffer() -> None:
    kkt = _reduced_system(generate("random_eq", 6, n=10, seed=2))
    first = kkt.factor(*_weights(6, kkt.m, 0))
    second = kkt.factor(*_weights(6, kkt.m, 1))
    assert first.L.data_ptr() == second.L.data_ptr()


@pytest.mark.parametrize("family", ["random_eq", "equality_only"])  # with and without inequalities
def test_a_compacted_system_factors_and_solves_as_one_built_for_its_problems(family: str) -> None:
    batch = generate(family, 10, n=12, seed=3)
    full = _reduced_system(batch)
    full.factor(*_weights(10, full.m, 0))  # the buffers now exist and hold another factorization
    kept_rows = torch.tensor([1, 4, 5, 8])
    kept = full.select(kept_rows)
    alone = _reduced_system(batch[kept_rows])  # each problem's scaling is its own
    assert torch.equal(kept.prob.QCt, alone.prob.QCt)
    weights = _weights(4, full.m, 5)
    fac_kept, fac_alone = kept.factor(*weights), alone.factor(*weights)
    assert torch.equal(fac_kept.ok, fac_alone.ok)
    a = torch.randn(4, full.n, dtype=torch.float64)
    e = torch.randn(4, full.k, dtype=torch.float64)
    g = torch.randn(4, full.m, dtype=torch.float64)
    d_kept = kept.solve(fac_kept, kept.shared_rhs(fac_kept, a, e), g)
    d_alone = alone.solve(fac_alone, alone.shared_rhs(fac_alone, a, e), g)
    for x, y in zip((d_kept.dz, d_kept.dlam, d_kept.dnu), (d_alone.dz, d_alone.dlam, d_alone.dnu), strict=True):
        assert x is not None and y is not None
        assert torch.allclose(x, y, rtol=1e-10, atol=1e-12)
