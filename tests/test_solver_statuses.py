"""What users rely on from the in-house solver's statuses: certificates at every tolerance, no
false claims, statuses independent of the batch, infinite and large bounds, honest failures."""

from __future__ import annotations

import pytest
import torch

from qpbench.generators import FAMILIES, generate
from qpbench.layer import QPFunction
from qpbench.problem import QPBatch
from qpbench.reference import reference_solve
from qpbench.solver import solve
from qpbench.status import Status

F64, F32 = torch.float64, torch.float32
TOLERANCES = [1e-6, 1e-8, 1e-10]
FEASIBLE = sorted(name for name, fam in FAMILIES.items() if fam.expected_status == "solved")
CERTIFIED = {"primal_infeasible": Status.PRIMAL_INFEASIBLE, "dual_infeasible": Status.DUAL_INFEASIBLE}


@pytest.mark.parametrize("dtype", [F64, F32])
@pytest.mark.parametrize("eps", TOLERANCES)
@pytest.mark.parametrize("family", sorted(CERTIFIED))
def test_infeasible_and_unbounded_are_certified_at_every_tolerance(family: str, eps: float, dtype: torch.dtype) -> None:
    # eps_rel = 0 and eps_abs down to 1e-10: the certificates must not depend on the tolerance.
    statuses = []
    for n, seed in [(6, 0), (15, 1), (30, 2)]:
        sol = solve(generate(family, 20, n, seed=seed, dtype=dtype), eps_abs=eps, eps_rel=0.0)
        statuses += sol.statuses()
    detected = sum(s is CERTIFIED[family] for s in statuses) / len(statuses)
    assert detected >= 0.99, f"{detected:.0%} detected: {[s.label for s in statuses]}"
    assert Status.SOLVED not in statuses


@pytest.mark.parametrize("dtype", [F64, F32])
def test_infeasibility_is_certified_with_fifty_rows_a_variable(dtype: torch.dtype) -> None:
    # The certificate sharpens as delta shrinks; stalled at float32's floor, some of these kept a
    # Farkas residual of 2.5e-3 (the test asks 1e-3) until the stall limit made them numerical errors.
    sol = solve(generate("primal_infeasible", 12, 10, m=500, seed=5, dtype=dtype))
    assert all(s is Status.PRIMAL_INFEASIBLE for s in sol.statuses()), sol.status_counts()


@pytest.mark.parametrize("dtype", [F64, F32])
@pytest.mark.parametrize("eps", TOLERANCES)
def test_no_feasible_problem_is_declared_infeasible_or_unbounded(eps: float, dtype: torch.dtype) -> None:
    claims = {}
    for family in FEASIBLE:
        sol = solve(generate(family, 12, 12, seed=4, dtype=dtype), eps_abs=eps, eps_rel=0.0)
        wrong = [s.label for s in sol.statuses() if s in (Status.PRIMAL_INFEASIBLE, Status.DUAL_INFEASIBLE)]
        if wrong:
            claims[family] = wrong
    assert not claims


def _mixed_batch(dtype: torch.dtype) -> QPBatch:
    """Feasible, infeasible and unbounded problems of one size, some with badly scaled rows."""
    n, m = 4, 8
    parts = [
        generate("optnet_random", 3, n, m=m, seed=1, dtype=F64),
        generate("lp", 3, n, m=m, seed=2, dtype=F64),
        generate("primal_infeasible", 3, n, m=m, seed=3, dtype=F64),
        generate("dual_infeasible", 3, n, m=m, seed=4, dtype=F64),
    ]
    parts = [QPBatch(Q=b.Q, p=b.p, G=b.G, h=b.h) for b in parts]
    batch = QPBatch.concat(parts)
    # Badly scaled rows: multiply rows of the first problems by 1e4 and 1e-4 (same feasible set).
    scale = torch.ones(batch.batch_size, batch.m, dtype=F64)
    scale[:6, 0], scale[:6, 1] = 1e4, 1e-4
    return QPBatch(Q=batch.Q, p=batch.p, G=batch.G * scale.unsqueeze(-1), h=batch.h * scale).to(dtype=dtype)


@pytest.mark.parametrize("dtype", [F64, F32])
def test_a_problems_status_does_not_depend_on_its_batch(dtype: torch.dtype) -> None:
    batch = _mixed_batch(dtype)
    together = solve(batch).statuses()
    alone = [solve(batch[i]).statuses()[0] for i in range(batch.batch_size)]
    assert together == alone
    reordered = solve(batch[list(reversed(range(batch.batch_size)))]).statuses()
    assert list(reversed(reordered)) == together


def test_rows_without_bound_are_absent() -> None:
    batch = generate("optnet_random", 4, 6, m=6, seed=5)
    # Two extra rows per problem that would cut the optimum off, with no bound (+inf and 1e20).
    G = torch.cat([batch.G, -batch.G[:, :2]], dim=1)
    h = torch.cat([batch.h, torch.tensor([float("inf"), 1e20], dtype=F64).expand(4, 2)], dim=1)
    with_absent = solve(QPBatch(Q=batch.Q, p=batch.p, G=G, h=h), eps_abs=1e-9, eps_rel=0.0)
    plain = solve(batch, eps_abs=1e-9, eps_rel=0.0)
    assert with_absent.solved.all() and plain.solved.all()
    assert torch.allclose(with_absent.z, plain.z, atol=1e-7)
    assert torch.equal(with_absent.lam[:, -2:], torch.zeros(4, 2, dtype=F64))
    assert torch.isinf(with_absent.s[:, -2:]).all()


def test_minus_infinity_in_h_names_the_row() -> None:
    batch = generate("optnet_random", 2, 4, m=3, seed=0)
    h = batch.h.clone()
    h[1, 2] = float("-inf")
    with pytest.raises(ValueError, match=r"h\[1, 2\] = -inf"):
        QPBatch(Q=batch.Q, p=batch.p, G=batch.G, h=h)


@pytest.mark.parametrize("bound", [1e8, 1e15])
def test_large_finite_bounds_give_the_right_answer(bound: float) -> None:
    # Box-constrained problems whose box is huge (and never active) plus a few real rows.
    base = generate("optnet_random", 4, 6, m=4, seed=6)
    eye = torch.eye(6, dtype=F64).expand(4, 6, 6)
    G = torch.cat([base.G, eye, -eye], dim=1)
    h = torch.cat([base.h, torch.full((4, 12), bound, dtype=F64)], dim=1)
    batch = QPBatch(Q=base.Q, p=base.p, G=G, h=h)
    sol = solve(batch, eps_abs=1e-8, eps_rel=0.0)
    ref = reference_solve(base)
    assert sol.solved.all(), sol.status_counts()
    assert torch.allclose(sol.z, ref.z, atol=1e-6)


def test_an_unsolved_problem_returns_a_finite_best_iterate_with_its_reason() -> None:
    batch = generate("optnet_random", 3, 10, seed=0)
    sol = solve(batch, max_iter=3)
    assert all(s is Status.MAX_ITER for s in sol.statuses())
    assert torch.isfinite(sol.z).all() and float(sol.z.abs().max()) < 1e3
    infeasible = solve(generate("primal_infeasible", 3, 10, seed=1))
    assert all(s is Status.PRIMAL_INFEASIBLE for s in infeasible.statuses())
    assert torch.isfinite(infeasible.z).all()


def test_qpfunction_validates_as_solve_does() -> None:
    batch = generate("optnet_random", 3, 5, seed=0)
    Q = batch.Q.clone()
    Q[1] = -Q[1]  # one negative definite member
    with pytest.raises(ValueError, match="not positive semidefinite"):
        QPFunction.apply(Q, batch.p, batch.G, batch.h, None, None)
    with pytest.raises(ValueError, match=r"p must be a torch\.Tensor or None, got ndarray"):
        QPFunction.apply(batch.Q, batch.p.numpy(), batch.G, batch.h, None, None)


def test_work_counts_describe_the_solve() -> None:
    batch = generate("optnet_random", 4, 10, seed=2)
    sol = solve(batch)
    work = sol.work
    assert work.iterations == sol.info.iterations_loop
    # Every running problem is factored once per iteration (plus the initial point), solved twice.
    assert work.factorizations >= int(sol.iterations.sum())
    assert work.solves >= 2 * int(sol.iterations.sum())
    assert solve(batch).work == work  # deterministic
