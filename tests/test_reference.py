"""Clarabel reference solver: sign conventions, statuses, failure isolation, polishing."""

from __future__ import annotations

import math

import pytest
import torch

from qpbench import reference
from qpbench.generators import generate
from qpbench.problem import QPBatch
from qpbench.reference import reference_solve
from qpbench.status import Status

F64 = torch.float64


def test_known_inequality_solution_and_multiplier_sign() -> None:
    # min 1/2 |z|^2 - 1'z  s.t.  z <= 0.5: z = 0.5, and Qz + p + lam = 0 gives lam = 0.5 >= 0.
    n = 3
    batch = QPBatch(
        Q=torch.eye(n, dtype=F64), p=-torch.ones(1, n, dtype=F64), G=torch.eye(n, dtype=F64),
        h=0.5 * torch.ones(n, dtype=F64),
    )  # fmt: skip
    ref = reference_solve(batch)
    assert ref.status == [Status.SOLVED]
    torch.testing.assert_close(ref.z, torch.full((1, n), 0.5, dtype=F64))
    torch.testing.assert_close(ref.lam, torch.full((1, n), 0.5, dtype=F64))
    assert ref.nu.shape == (1, 0)
    assert float(ref.objective[0]) == pytest.approx(3 * (0.125 - 0.5))


def test_known_equality_solution_and_multiplier_sign() -> None:
    # min 1/2 |z|^2 s.t. 1'z = 1: z = 1/n, and z + nu 1 = 0 gives nu = -1/n.
    n = 4
    batch = QPBatch(
        Q=torch.eye(n, dtype=F64), p=torch.zeros(n, dtype=F64), A=torch.ones(1, n, dtype=F64),
        b=torch.ones(1, dtype=F64),
    )  # fmt: skip
    ref = reference_solve(batch)
    torch.testing.assert_close(ref.z, torch.full((1, n), 1 / n, dtype=F64))
    torch.testing.assert_close(ref.nu, torch.full((1, 1), -1 / n, dtype=F64))
    assert ref.lam.shape == (1, 0)


def test_shared_tensors_and_float32_input_give_float64_per_problem_results() -> None:
    batch = generate("box", 3, 6, seed=1, dtype=torch.float32)
    assert not batch.is_batched("G")
    ref = reference_solve(batch)
    assert ref.status == [Status.SOLVED] * 3
    assert ref.z.dtype == F64 and ref.z.shape == (3, 6) and ref.lam.shape == (3, 12)
    assert ref.objective.shape == (3,)
    assert len(set(ref.objective.tolist())) == 3  # three different problems


def test_infeasible_and_unbounded_objectives_are_infinite() -> None:
    infeasible = reference_solve(generate("primal_infeasible", 1, 5))
    unbounded = reference_solve(generate("dual_infeasible", 1, 5))
    assert infeasible.status == [Status.PRIMAL_INFEASIBLE] and float(infeasible.objective[0]) == math.inf
    assert unbounded.status == [Status.DUAL_INFEASIBLE] and float(unbounded.objective[0]) == -math.inf
    for ref in (infeasible, unbounded):
        assert bool(ref.z.isnan().all() and ref.lam.isnan().all())


def test_a_crash_in_one_problem_is_that_problem_s_numerical_error(monkeypatch: pytest.MonkeyPatch) -> None:
    batch = generate("random_eq", 3, 6, seed=0)
    real = reference._clarabel_attempt
    calls = {"count": 0}

    def crash_on_second(*args, **kwargs):
        calls["count"] += 1
        if calls["count"] == 2:
            raise BaseException("simulated Rust panic")  # pyo3 panics are BaseExceptions
        return real(*args, **kwargs)

    monkeypatch.setattr(reference, "_clarabel_attempt", crash_on_second)
    ref = reference_solve(batch)
    assert ref.status == [Status.SOLVED, Status.NUMERICAL_ERROR, Status.SOLVED]
    assert "simulated Rust panic" in ref.raw_status[1]
    assert bool(ref.z[1].isnan().all()) and math.isnan(float(ref.objective[1]))
    assert bool(torch.isfinite(ref.z[[0, 2]]).all())


def test_iteration_limit_is_reported_not_hidden() -> None:
    ref = reference_solve(generate("random_eq", 2, 8, seed=0), max_iter=1)
    assert ref.status == [Status.MAX_ITER] * 2
    assert ref.raw_status == ["MaxIterations"] * 2
    assert bool(ref.z.isnan().all())


def test_polishing_never_makes_the_answer_worse() -> None:
    batch = generate("rank_deficient", 4, 30, seed=3)
    rough = reference_solve(batch, polish=False)
    polished = reference_solve(batch, polish=True)

    def worst(ref: reference.ReferenceSolution) -> torch.Tensor:
        return torch.stack(list(batch.residuals(ref.z, ref.lam, ref.nu).values())).amax(0)

    assert bool((worst(polished) <= worst(rough)).all())
    assert float(worst(polished).max()) < 1e-9
    torch.testing.assert_close(polished.objective, rough.objective, rtol=1e-6, atol=1e-6)


def test_status_tensor_holds_the_codes() -> None:
    ref = reference_solve(generate("primal_infeasible", 2, 4))
    assert ref.status_tensor().tolist() == [int(Status.PRIMAL_INFEASIBLE)] * 2


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [({"batch": "not a batch"}, "batch"), ({"tolerance": 0.0}, "tolerance"), ({"max_iter": 0}, "max_iter")],
)
def test_bad_arguments_raise_value_error_naming_them(kwargs: dict, argument: str) -> None:
    args = {"batch": generate("box", 1, 3)} | kwargs
    with pytest.raises(ValueError, match=argument):
        reference_solve(**args)
