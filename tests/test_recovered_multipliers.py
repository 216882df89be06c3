"""Solvers that return z only are judged with multipliers recovered at their z (docs/solvers.md).

A z-only adapter defined here (SciPy's SLSQP, which returns no usable multipliers) must count as
succeeding when its z is accurate, and a deliberately inaccurate variant (feasible, but off the
optimum) must fail, on the dual or gap test, not be rescued by the fit. The adapters are reached
by ``module:Class`` specs, as a user's own adapter would be.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from qpbench.adapters._common import LoopedAdapter, OneResult, ProblemArrays
from qpbench.adapters.base import Capabilities, Tolerance
from qpbench.problem import QPBatch
from qpbench.runner.measure import (
    MULTIPLIERS_FROM_SOLVER,
    MULTIPLIERS_RECOVERED,
    evaluate,
    recover_multipliers,
    run_measurement,
    summarize,
)
from qpbench.status import Status

HERE = __name__
EPS = Tolerance.MID.eps
# How far the sloppy adapter moves from the optimum toward an interior point: feasible, and a
# dual residual and gap of about this size, far above eps.
SLOPPY_STEP = 1e-3


def problems(batch_size: int = 6, n: int = 8, m: int = 12, k: int = 3, seed: int = 0) -> QPBatch:
    """Strongly convex QPs with a known strictly feasible point z_f (h = G z_f + 1, b = A z_f)."""
    gen = torch.Generator().manual_seed(seed)
    U = torch.randn(batch_size, n, n, generator=gen, dtype=torch.float64)
    Q = U @ U.transpose(1, 2) / n + 0.1 * torch.eye(n, dtype=torch.float64)
    p = 3 * torch.randn(batch_size, n, generator=gen, dtype=torch.float64)  # pushes the optimum onto bounds
    G = torch.randn(batch_size, m, n, generator=gen, dtype=torch.float64)
    A = torch.randn(batch_size, k, n, generator=gen, dtype=torch.float64)
    z_f = torch.randn(batch_size, n, generator=gen, dtype=torch.float64)
    h = torch.einsum("bmn,bn->bm", G, z_f) + 1.0
    b = torch.einsum("bkn,bn->bk", A, z_f)
    return QPBatch(Q=Q, p=p, G=G, h=h, A=A, b=b, meta={"interior": z_f.tolist()})


class SlsqpAdapter(LoopedAdapter):
    """SciPy's SLSQP, tight: an accurate z and nothing else."""

    name = "slsqp"
    package = "scipy"
    capabilities = Capabilities(batched=False, differentiable=False)
    returns_multipliers = False

    def options(self, tolerance: Tolerance, time_limit: float) -> dict[str, Any]:
        return {"ftol": 1e-12, "maxiter": 1000}

    def solve_one(self, item: ProblemArrays, options: dict[str, Any]) -> OneResult:
        from scipy.optimize import minimize

        d = item
        constraints = [{"type": "ineq", "fun": lambda z: d.h - d.G @ z, "jac": lambda z: -d.G}]
        if d.k:
            constraints.append({"type": "eq", "fun": lambda z: d.A @ z - d.b, "jac": lambda z: d.A})
        found = minimize(
            lambda z: 0.5 * z @ d.Q @ z + d.p @ z, np.zeros(d.n), jac=lambda z: d.Q @ z + d.p,
            constraints=constraints, method="SLSQP", options=options,
        )
        return OneResult(Status.SOLVED if found.success else Status.MAX_ITER, z=np.asarray(found.x))


class SloppySlsqpAdapter(SlsqpAdapter):
    """Says solved, but returns a feasible point SLOPPY_STEP of the way from the optimum to z_f."""

    name = "sloppy_slsqp"

    def prepare_one(self, data: ProblemArrays, options: dict[str, Any]) -> Any:
        # z_f solves G z = h - 1, A z = b: recover it by least squares from the data alone.
        rows = np.vstack([data.G, data.A])
        interior = np.linalg.lstsq(rows, np.concatenate([data.h - 1.0, data.b]), rcond=None)[0]
        return data, interior

    def solve_one(self, item: Any, options: dict[str, Any]) -> OneResult:
        data, interior = item
        exact = super().solve_one(data, options)
        z = (1 - SLOPPY_STEP) * exact.z + SLOPPY_STEP * interior
        return OneResult(Status.SOLVED, z=z)


def spec(cls: type) -> str:
    return f"{HERE}:{cls.__name__}"


def measured(cls: type, batch: QPBatch) -> dict[str, Any]:
    raw = run_measurement(spec(cls), batch, "mid", 30.0, warmups=0, repeats=1, threads=None)
    return summarize(raw, EPS)


def test_an_accurate_z_only_solver_succeeds_with_recovered_multipliers() -> None:
    batch = problems()
    fields = measured(SlsqpAdapter, batch)
    assert fields["multipliers"] == MULTIPLIERS_RECOVERED
    assert fields["n_success"] == batch.batch_size, fields
    assert fields["dual_res_max"] <= EPS and fields["gap_max"] <= EPS
    # Without the rule it would fail: z alone, judged with zero multipliers, is not stationary.
    out = SlsqpAdapter().solve(SlsqpAdapter().setup(batch, Tolerance.MID))
    assert out.lam is None and out.nu is None
    bare = batch.residuals(out.z)
    assert (bare["dual"] > 1e-2).all()


def test_an_inaccurate_z_only_solver_fails_the_dual_or_gap_test() -> None:
    batch = problems()
    fields = measured(SloppySlsqpAdapter, batch)
    assert fields["multipliers"] == MULTIPLIERS_RECOVERED
    assert fields["primal_res_max"] <= EPS  # feasible: only optimality is wrong
    assert fields["n_success"] == 0, fields
    assert fields["n_failed_status"] == 0 and fields["n_failed_primal"] == 0
    failed = np.maximum(fields["n_failed_dual"], fields["n_failed_gap"])
    assert failed == batch.batch_size, fields


def test_recovered_multipliers_match_the_true_ones_at_the_optimum() -> None:
    from qpbench.reference import reference_solve

    batch = problems(seed=1)
    ref = reference_solve(batch)
    lam, nu = recover_multipliers(batch, ref.z)
    assert (lam >= 0).all()
    torch.testing.assert_close(lam, ref.lam, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(nu, ref.nu, atol=1e-6, rtol=1e-5)


def test_multipliers_are_recovered_only_when_missing() -> None:
    from qpbench.reference import reference_solve

    batch = problems(seed=2)
    ref = reference_solve(batch)
    status = np.zeros(batch.batch_size, dtype=int)
    own = evaluate(batch, ref.z, ref.lam, ref.nu, status, None)
    assert own["multipliers"] == MULTIPLIERS_FROM_SOLVER
    # Multipliers that the solver did return are judged as returned, even when wrong.
    wrong = evaluate(batch, ref.z, torch.zeros_like(ref.lam), ref.nu, status, None)
    assert wrong["multipliers"] == MULTIPLIERS_FROM_SOLVER and max(wrong["dual"]) > 1e-2
    # One block missing is enough to recover both (a fit of one block alone could be unfair).
    half = evaluate(batch, ref.z, ref.lam, None, status, None)
    assert half["multipliers"] == MULTIPLIERS_RECOVERED and max(half["dual"]) <= EPS


def test_a_non_finite_z_gets_no_multipliers() -> None:
    batch = problems(batch_size=2)
    z = torch.full((2, batch.n), float("nan"), dtype=torch.float64)
    lam, nu = recover_multipliers(batch, z)
    assert torch.isnan(lam).all() and torch.isnan(nu).all()


@pytest.mark.parametrize(
    ("status", "primal", "dual", "gap", "expected"),
    [
        # one problem each: solved and accurate; solved with a large gap; solved, wrong on all three;
        # not solved (its residuals are not counted); solved with an unmeasured (NaN) dual residual
        ([0, 0, 0, 3, 0], [0, 0, 1, 1, 0], [0, 0, 1, 1, np.nan], [0, 1, 1, 1, 0], (1, 1, 2, 2)),
    ],
)
def test_failed_criteria_are_counted_per_test(status: list, primal: list, dual: list, gap: list,
                                              expected: tuple) -> None:
    raw = {"status": status, "primal": primal, "dual": dual, "gap": gap, "objective": [0.0] * 5,
           "setup_times": [0.1], "solve_times": [0.2], "iterations": None}
    fields = summarize(raw, EPS)
    assert (fields["n_failed_status"], fields["n_failed_primal"], fields["n_failed_dual"],
            fields["n_failed_gap"]) == expected
    assert fields["n_success"] == 1 and fields["multipliers"] == MULTIPLIERS_FROM_SOLVER
    infeasible = summarize({**raw, "status": [1, 1, 0, 3, 1]}, EPS, expected_status="primal_infeasible")
    assert infeasible["n_failed_status"] == 2 and infeasible["n_failed_gap"] == 0


def test_bounded_least_squares_by_hand() -> None:
    from qpbench.runner.measure import bounded_least_squares

    # target = 2 * b1 + 0 * b2 + 3 * f, and b2 can only help with a negative weight: x = (2, 0)
    b1, b2, f = np.array([1.0, 0, 0, 0]), np.array([0, -1.0, 0, 0]), np.array([0, 0, 1.0, 1.0])
    target = 2 * b1 + 3 * f + np.array([0, 1.0, 0, 0])
    x, y = bounded_least_squares(np.column_stack([b1, b2]), np.column_stack([f, f]), target)  # f twice: rank 1
    np.testing.assert_allclose(x, [2.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(np.column_stack([f, f]) @ y, 3 * f, atol=1e-12)
    x, y = bounded_least_squares(np.column_stack([b1]), np.zeros((4, 0)), target)
    np.testing.assert_allclose(x, [2.0])
    assert y.shape == (0,)
