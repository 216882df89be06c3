"""The in-house solver against a reference (Clarabel) on every generator family, both dtypes."""

from __future__ import annotations

import pytest
import torch

from qpbench.generators import FAMILIES, generate
from qpbench.problem import QPBatch
from qpbench.reference import reference_solve
from qpbench.solver import SolverSettings, solve
from qpbench.solver.settings import parse_overrides
from qpbench.status import Status

FEASIBLE = sorted(name for name, fam in FAMILIES.items() if fam.expected_status == "solved")
INFEASIBLE = {"primal_infeasible": Status.PRIMAL_INFEASIBLE, "dual_infeasible": Status.DUAL_INFEASIBLE}
# Stated float32 bounds: relative objective error of solved problems, and the share that must be
# solved. The rank-deficient family (singular Q AND rank-deficient A) is not robust in float32:
# there we only require honest statuses (no false infeasibility, no NaN).
F32_OBJ_REL = 2e-3
F32_MIN_SOLVED = 0.9
F32_WEAK = {"rank_deficient"}
BATCH, N = 20, 10


@pytest.fixture(scope="module")
def references() -> dict[str, tuple[QPBatch, object]]:
    out = {}
    for family in FEASIBLE:
        batch = generate(family, BATCH, N, seed=7)
        out[family] = (batch, reference_solve(batch))
    return out


def _rel_err(batch: QPBatch, z: torch.Tensor, ref_obj: torch.Tensor) -> torch.Tensor:
    return (batch.objective(z.double()) - ref_obj).abs() / ref_obj.abs().clamp_min(1.0)


@pytest.mark.parametrize("family", FEASIBLE)
def test_float64_matches_reference_and_meets_tolerance(family: str, references) -> None:
    batch, ref = references[family]
    assert all(s is Status.SOLVED for s in ref.status), "reference failed to solve a feasible problem"
    sol = solve(batch)
    assert sol.solved.all(), f"{family}: statuses {sol.status_counts()}"
    assert float(_rel_err(batch, sol.z, ref.objective).max()) < 1e-6
    res = batch.residuals(sol.z, sol.lam, sol.nu)
    settings = SolverSettings().resolved(torch.float64)
    # The solver's own test is eps_abs + eps_rel * scale; on these data the scales are O(10-100).
    bound = settings.eps_abs + settings.eps_rel * 1e3
    for name, values in res.items():
        assert float(values.max()) <= bound, f"{family}: {name} residual {float(values.max()):.2e}"


@pytest.mark.parametrize("family", FEASIBLE)
def test_float32_within_stated_bound(family: str, references) -> None:
    batch64, ref = references[family]
    sol = solve(batch64.to(dtype=torch.float32))
    for t in (sol.z, sol.lam, sol.nu):
        assert torch.isfinite(t).all()
    counts = sol.status_counts()
    assert counts.get("primal_infeasible", 0) == 0 and counts.get("dual_infeasible", 0) == 0, counts
    if family in F32_WEAK:
        return
    solved = sol.solved
    assert solved.float().mean() >= F32_MIN_SOLVED, f"{family}: {counts}"
    assert float(_rel_err(batch64, sol.z, ref.objective)[solved].max()) < F32_OBJ_REL


@pytest.mark.parametrize("family", ["control", "huber"])
def test_float32_solves_every_problem_with_equality_rows_at_n_64(family: str) -> None:
    # Equality rows weigh 1/delta in the reduced form; with float32's floor too small for its
    # rounding these families stalled at dual residuals of 1e-3 (solved_inaccurate, 50+ iterations).
    batch = generate(family, 40, 64, seed=2, dtype=torch.float32)
    sol = solve(batch)
    assert sol.solved.all(), f"{family}: {sol.status_counts()}"
    assert int(sol.iterations.max()) <= 20, sol.iterations.tolist()


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("family", sorted(INFEASIBLE))
def test_infeasible_and_unbounded_get_the_right_status(family: str, dtype: torch.dtype) -> None:
    batch = generate(family, 10, N, seed=3, dtype=dtype)
    sol = solve(batch)
    expected = INFEASIBLE[family]
    share = (sol.status == int(expected)).float().mean()
    # float64 must classify every problem; float32 may run out of iterations on a few but
    # must never call them solved.
    assert share == 1.0 if dtype == torch.float64 else share >= 0.5, sol.status_counts()
    assert not sol.solved.any()
    assert torch.isfinite(sol.z).all()


def test_both_kkt_forms_agree() -> None:
    batch = generate("optnet_random", 6, 12, seed=1)
    a = solve(batch, kkt_form="reduced")
    b = solve(batch, kkt_form="dual")
    assert a.info.kkt_form == "reduced" and b.info.kkt_form == "dual"
    assert torch.allclose(a.z, b.z, atol=1e-6)


def test_auto_form_avoids_the_dual_form_for_singular_q() -> None:
    batch = generate("rank_deficient", 4, 30, seed=1)
    assert solve(batch).info.kkt_form == "reduced"


def test_shared_matrices_give_the_same_answer_as_batched() -> None:
    batch = generate("random_eq", 4, 8, seed=2)
    shared = QPBatch(Q=batch.Q[0], p=batch.p, G=batch.G[0], h=batch.h, A=batch.A[0], b=batch.b)
    expanded = shared.batched()
    assert torch.allclose(solve(shared).z, solve(expanded).z, atol=1e-9)


def test_mixed_batch_gives_per_problem_statuses() -> None:
    good = generate("random_eq", 3, 8, seed=0)
    bad = generate("primal_infeasible", 2, 8, m=good.m, seed=0)
    # pad equalities so sizes match: primal_infeasible has k = 0
    bad = QPBatch(Q=bad.Q, p=bad.p, G=bad.G, h=bad.h, A=torch.zeros(2, good.k, 8, dtype=torch.float64),
                  b=torch.zeros(2, good.k, dtype=torch.float64))
    sol = solve(QPBatch.concat([good, bad]))
    assert sol.statuses() == [Status.SOLVED] * 3 + [Status.PRIMAL_INFEASIBLE] * 2


def test_converged_problems_stop_iterating() -> None:
    easy = generate("equality_only", 2, 8, seed=0)  # solved by the first Newton step
    sol = solve(easy)
    assert int(sol.iterations.max()) <= 2
    mixed = QPBatch.concat([generate("optnet_random", 3, 8, seed=0), generate("optnet_random", 3, 8, seed=5)])
    sol = solve(mixed)
    assert sol.solved.all()
    assert len(set(sol.iterations.tolist())) > 1  # each problem counts its own iterations


def test_max_iter_is_a_status_not_an_exception() -> None:
    batch = generate("optnet_random", 3, 10, seed=0)
    sol = solve(batch, max_iter=2)
    assert (sol.status == int(Status.MAX_ITER)).all()
    assert torch.isfinite(sol.z).all()


def test_bad_settings_and_input_raise() -> None:
    with pytest.raises(ValueError, match="eps_abs"):
        SolverSettings(eps_abs=-1.0)
    with pytest.raises(ValueError, match="kkt_form"):
        SolverSettings(kkt_form="lu")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown solver settings"):
        solve(generate("box", 1, 4), tolerance=1e-3)
    with pytest.raises(ValueError, match=r"batch must be a qpbench\.QPBatch"):
        solve("not a batch")  # type: ignore[arg-type]


def test_command_line_settings_are_typed_and_checked() -> None:
    parsed = parse_overrides(["compile=true", "max_iter=30", "reg_floor=1e-6", "mode=fixed"])
    assert parsed == {"compile": True, "max_iter": 30, "reg_floor": 1e-6, "mode": "fixed"}
    assert type(parsed["max_iter"]) is int and type(parsed["reg_floor"]) is float
    with pytest.raises(ValueError, match="expected KEY=VALUE"):
        parse_overrides(["reg_floor"])
    with pytest.raises(ValueError, match="unknown solver settings"):
        parse_overrides(["floor=1e-6"])
    with pytest.raises(ValueError, match="max_iter"):
        parse_overrides(["max_iter=-3"])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_cuda_matches_cpu() -> None:
    batch = generate("random_eq", 8, 20, seed=4)
    cpu = solve(batch)
    gpu = solve(batch.to("cuda"))
    assert gpu.z.device.type == "cuda"
    assert torch.allclose(cpu.z, gpu.z.cpu(), atol=1e-6)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_solve_leaves_its_input_unchanged(dtype: torch.dtype) -> None:
    # Scaling works on copies: an in-place pass once wrote |Q| into a float32 caller's shared Q.
    batch = generate("optnet_random", batch_size=3, n=6, m=4, seed=2, dtype=dtype)
    for b in (batch, QPBatch(Q=batch.Q[0], p=batch.p, G=batch.G[0], h=batch.h)):
        before = {name: t.clone() for name, t in b.tensors().items()}
        solve(b)
        for name, t in b.tensors().items():
            assert torch.equal(t, before[name]), f"solve modified {name}"


def test_solve_records_no_autograd_history() -> None:
    batch = generate("optnet_random", batch_size=2, n=6, m=4, seed=3)
    tracked = QPBatch(**{name: t.clone().requires_grad_(True) for name, t in batch.tensors().items()})
    sol = solve(tracked)
    assert not sol.z.requires_grad and not sol.lam.requires_grad
    assert torch.allclose(sol.z, solve(batch).z)


def test_scaled_data_is_held_once_in_the_products_layout() -> None:
    """The scaled matrices live in one [Q, G', A'] buffer that Q, G, A and C = [G; A] view
    (no second copy of the data per solve), with the values of the scaling's definition."""
    from qpbench.solver.scaling import equilibrate

    batch = generate("random_eq", 3, n=5, m=4, k=2, seed=1)
    P, _ = equilibrate(batch, iterations=10)
    assert P.QCt.shape == (3, 5, 5 + 4 + 2)
    base = P.QCt.untyped_storage().data_ptr()
    for view in (P.Q, P.G, P.A, P.C):
        assert view.untyped_storage().data_ptr() == base
    D, E, F, c = P.D, P.E, P.F, P.c.view(-1, 1, 1)
    torch.testing.assert_close(P.Q, c * D.unsqueeze(-1) * batch.Q * D.unsqueeze(-2), rtol=1e-15, atol=0)
    torch.testing.assert_close(P.G, E.unsqueeze(-1) * batch.G * D.unsqueeze(-2), rtol=1e-15, atol=0)
    torch.testing.assert_close(P.A, F.unsqueeze(-1) * batch.A * D.unsqueeze(-2), rtol=1e-15, atol=0)
    torch.testing.assert_close(P.C, torch.cat([P.G, P.A], dim=1), rtol=0, atol=0)
    part = P.select(torch.tensor([2, 0]))
    torch.testing.assert_close(part.G, P.G[[2, 0]], rtol=0, atol=0)


def _rows_spanning(orders: float, dtype: torch.dtype, B: int = 16, n: int = 10, m: int = 12) -> QPBatch:
    """Random strictly convex QPs whose inequality rows are scaled from 10^-orders to 10^orders
    (each row's bound scaled with it: the same feasible set), feasible with a margin."""
    g = torch.Generator().manual_seed(3)
    X = torch.randn(B, n, n, generator=g, dtype=torch.float64)
    G = torch.randn(B, m, n, generator=g, dtype=torch.float64)
    G = G * torch.logspace(-orders, orders, m, dtype=torch.float64).view(1, m, 1)
    z0 = torch.randn(B, n, 1, generator=g, dtype=torch.float64)
    h = (G @ z0).squeeze(-1) + 0.1 * G.abs().sum(-1)
    p = torch.randn(B, n, generator=g, dtype=torch.float64)
    return QPBatch(Q=(X @ X.mT / n).to(dtype), p=p.to(dtype), G=G.to(dtype), h=h.to(dtype))


def test_scaling_leaves_q_block_near_one_and_the_kkt_matrix_equilibrated() -> None:
    """Rows of very different scales: Ruiz alone would leave |Q_hat| at 0.04 to 0.2 (the rows' scale
    taken by the columns as well as the rows); the balanced scaling brings the Q block's largest
    entry to 1 while every row and column of the scaled KKT matrix keeps a norm of about 1."""
    from qpbench.solver.scaling import equilibrate

    P, _ = equilibrate(_rows_spanning(2.0, torch.float64), iterations=10)
    torch.testing.assert_close(P.Q.abs().amax(dim=(-2, -1)), torch.ones(16, dtype=torch.float64), rtol=1e-5, atol=0)
    row_norms = P.G.abs().amax(-1)
    col_norms = torch.maximum(P.Q.abs().amax(-2), P.G.abs().amax(-2))
    for norms in (row_norms, col_norms):
        assert float(norms.max()) <= 1.0 + 1e-5 and float(norms.min()) >= 0.5


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("orders", [4.0, 6.0])
def test_badly_scaled_rows_are_solved_in_both_dtypes(dtype: torch.dtype, orders: float) -> None:
    """Constraint rows spanning 8 and 12 orders of magnitude: every problem solved, to the
    reference objective, in both dtypes (float32 ended `numerical_error` on most of them when
    the scaling left Q at the level of the proximal terms)."""
    sol = solve(_rows_spanning(orders, dtype))
    assert sol.status_counts() == {"solved": 16}
    exact = _rows_spanning(orders, torch.float64)
    tol = 1e-6 if dtype == torch.float64 else F32_OBJ_REL
    assert float(_rel_err(exact, sol.z, reference_solve(exact).objective).max()) < tol


@pytest.mark.parametrize("eps_rel", [0.0, 1e-9])
def test_confirmation_verdict_does_not_depend_on_which_rows_are_checked_together(eps_rel: float) -> None:
    """The check on the original data reads the whole batch in place for many rows and copies the
    rows for few: the same test either way (rows, masks, rows without bound), so on problems not
    at the margin of the tolerance the verdicts agree."""
    from qpbench.solver.verify import confirmed

    base = generate("random_eq", 12, n=6, m=8, k=2, seed=4)
    h = base.expanded("h").clone()
    h[::4, 1] = float("inf")
    batch = QPBatch(Q=base.expanded("Q"), p=base.expanded("p"), G=base.expanded("G"), h=h,
                    A=base.expanded("A"), b=base.expanded("b"))
    sol = solve(batch, max_iter=6)  # a mix of converged and unconverged iterates
    everyone = torch.arange(12)
    together = confirmed(batch, everyone, sol.z, sol.lam, sol.nu, 1e-8, eps_rel)
    alone = torch.cat([confirmed(batch, everyone[i : i + 1], sol.z[i : i + 1], sol.lam[i : i + 1],
                                 sol.nu[i : i + 1], 1e-8, eps_rel) for i in range(12)])
    assert torch.equal(together, alone)
    assert together.any() and not together.all()


@pytest.mark.parametrize("mode", ["compact", "fixed"])
def test_a_batch_split_between_forms_returns_each_solution_in_its_place(mode: str) -> None:
    # Problems 2 and 3 have a singular Q (the dual form does not apply): the batch is solved as
    # two groups, and each problem's answer must land at its own position, as if solved alone.
    definite = generate("optnet_random", 2, 8, seed=1)
    other = generate("optnet_random", 2, 8, seed=2)
    Q = other.Q.clone()
    Q[:, 0, :] = 0
    Q[:, :, 0] = 0
    singular = QPBatch(Q=Q, p=other.p, G=other.G, h=other.h)
    batch = QPBatch.concat([definite, singular, definite[:1]])
    sol = solve(batch, mode=mode)
    assert [(g.form, g.index.tolist()) for g in sol.info.groups] == [("dual", [0, 1, 4]), ("reduced", [2, 3])]
    assert sol.info.kkt_form == "mixed"
    for i in range(batch.batch_size):
        alone = solve(batch[i : i + 1], mode=mode)
        assert alone.statuses()[0] == sol.statuses()[i] == Status.SOLVED
        assert int(alone.iterations[0]) == int(sol.iterations[i])
        assert torch.allclose(alone.z[0], sol.z[i], atol=1e-12, rtol=0)
