"""The dual KKT form's working-set selection: a compacted system is the same system for the
problems it keeps, Q's factor included (gathered only when asked)."""

from __future__ import annotations

import torch

from qpbench.generators import generate
from qpbench.solver.driver import set_up
from qpbench.solver.kkt import DualKKT
from qpbench.solver.kkt.dual import power_start
from qpbench.solver.result import WorkCounts


def _dual_system(batch_size: int) -> DualKKT:
    batch = generate("optnet_random", batch_size, n=12, m=15, seed=7)
    setup = set_up(batch, 10, False, power_start(batch_size, 12, batch.p))
    assert setup.q_factor is not None and bool(setup.definite.all())
    return DualKKT(setup.P, WorkCounts(), setup.q_factor)


def test_compactions_keep_each_problems_factor_and_products() -> None:
    full = _dual_system(10)
    first = torch.tensor([1, 2, 4, 6, 7, 9])
    second = torch.tensor([0, 3, 5])  # rows of ``first``: problems 1, 6, 9
    kept = full.select(first).select(second)
    problems = first[second]
    assert torch.equal(kept.Lq, full.Lq[problems])
    assert torch.equal(kept.K, full.K[problems]) and torch.equal(kept.Yt, full.Yt[problems])
    # The factor serves the form's solves with it: Q^-1 a for the kept problems.
    a = torch.randn(3, 12, dtype=torch.float64)
    rhs = kept.shared_rhs(kept.factor(torch.ones(3, 15, dtype=torch.float64), torch.zeros(3), torch.ones(3)),
                          a, a.new_zeros(3, 0))
    assert rhs.extra is not None
    Q = kept.prob.Q
    assert torch.allclose(torch.linalg.solve(Q, a.unsqueeze(-1)).squeeze(-1), rhs.extra[:, :12], atol=1e-10)
