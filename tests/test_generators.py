"""Problem generators: shapes, determinism, and feasibility / infeasibility as constructed
(checked against the Clarabel reference solver)."""

from __future__ import annotations

import pytest
import torch

from qpbench.generators import EXPECTED_STATUSES, FAMILIES, family_names, generate
from qpbench.generators.control import mpc_sizes
from qpbench.problem import QPBatch
from qpbench.reference import reference_solve
from qpbench.status import Status

ALL = family_names()
N = 12  # small enough for fast reference solves, large enough for every family's structure
FEASIBLE = [f for f in ALL if FAMILIES[f].expected_status == "solved"]
INFEASIBLE = [f for f in ALL if FAMILIES[f].expected_status != "solved"]


def test_registry_lists_every_family_the_suite_needs() -> None:
    wanted = {
        "optnet_random", "random_eq", "box", "lp", "rank_deficient", "equality_only",
        "inequality_only", "primal_infeasible", "dual_infeasible",
        "portfolio", "lasso", "huber", "svm", "control",
    }  # fmt: skip
    assert wanted <= set(ALL)
    for fam in FAMILIES.values():
        assert fam.expected_status in EXPECTED_STATUSES
        assert fam.description
        assert fam.ignores <= {"m", "k"}


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("family", ALL)
def test_family_builds_valid_batches_of_the_requested_sizes(family: str, dtype: torch.dtype) -> None:
    batch = generate(family, batch_size=3, n=N, seed=1, dtype=dtype)
    assert isinstance(batch, QPBatch)
    batch.validate(psd=True)  # the full check, eigenvalues included
    m, k = FAMILIES[family].default_sizes(N)
    assert (batch.batch_size, batch.n, batch.m, batch.k) == (3, N, m, k)
    assert batch.dtype == dtype and batch.device.type == "cpu"
    for name, t in batch.tensors().items():
        assert bool(torch.isfinite(t).all()), name
    meta = batch.meta
    assert (meta["family"], meta["seed"], meta["expected_status"]) == (
        family, 1, FAMILIES[family].expected_status
    )
    assert (meta["batch_size"], meta["n"], meta["m"], meta["k"]) == (3, N, m, k)


@pytest.mark.parametrize("family", [f for f in ALL if not FAMILIES[f].ignores >= {"m", "k"}])
def test_explicit_row_counts_are_honoured(family: str) -> None:
    fam = FAMILIES[family]
    m = fam.default_sizes(N)[0] if "m" in fam.ignores else 2 * N + 3  # lp needs m >= 2n
    k = fam.default_sizes(N)[1] if "k" in fam.ignores else 3
    batch = generate(family, 2, N, m=m, k=k, seed=4)
    assert (batch.m, batch.k) == (m, k)


@pytest.mark.parametrize("family", ALL)
def test_same_seed_same_problems_other_seed_other_problems(family: str) -> None:
    first = generate(family, 2, N, seed=7)
    again = generate(family, 2, N, seed=7)
    other = generate(family, 2, N, seed=8)
    for name in ("Q", "p", "G", "h", "A", "b"):
        assert torch.equal(getattr(first, name), getattr(again, name)), name
    differs = [
        name
        for name in ("Q", "p", "G", "h", "A", "b")
        if getattr(first, name).numel() and not torch.equal(getattr(first, name), getattr(other, name))
    ]
    assert differs, "a different seed must change the data"


def test_float32_is_the_float64_draw_rounded() -> None:
    # Problems are drawn in float64 on the CPU and converted last, so the dtype (and the
    # device) never changes which problem a seed names.
    double = generate("random_eq", 2, N, seed=3)
    single = generate("random_eq", 2, N, seed=3, dtype=torch.float32)
    for name in ("Q", "p", "G", "h", "A", "b"):
        assert torch.equal(getattr(single, name), getattr(double, name).float()), name


def test_problems_in_one_batch_differ() -> None:
    batch = generate("optnet_random", 2, N, seed=0)
    assert not torch.equal(batch.Q[0], batch.Q[1])
    assert not torch.equal(batch.p[0], batch.p[1])


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("family", FEASIBLE)
def test_feasible_families_solve_to_high_accuracy(family: str, dtype: torch.dtype) -> None:
    # float32 batches are judged as the problems they are: their (rounded) data in float64.
    batch = generate(family, 3, N, seed=2, dtype=dtype)
    ref = reference_solve(batch)
    assert ref.status == [Status.SOLVED] * 3, ref.raw_status
    exact = batch.to(dtype=torch.float64)
    res = exact.residuals(ref.z, ref.lam, ref.nu)
    for name, value in res.items():
        assert float(value.max()) < 1e-7, (name, value)
    assert bool((ref.lam >= 0).all())
    torch.testing.assert_close(ref.objective, exact.objective(ref.z), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("family", INFEASIBLE)
def test_infeasible_families_are_detected_as_built(family: str, dtype: torch.dtype) -> None:
    batch = generate(family, 3, N, seed=2, dtype=dtype)
    expected = {"primal_infeasible": Status.PRIMAL_INFEASIBLE, "dual_infeasible": Status.DUAL_INFEASIBLE}[
        FAMILIES[family].expected_status
    ]
    ref = reference_solve(batch)
    assert ref.status == [expected] * 3, ref.raw_status
    sign = 1.0 if expected is Status.PRIMAL_INFEASIBLE else -1.0
    assert bool((ref.objective == sign * float("inf")).all())
    assert bool(ref.z.isnan().all())


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_rank_deficiency_is_exact_in_both_dtypes(dtype: torch.dtype) -> None:
    batch = generate("rank_deficient", 2, N, k=6, seed=0, dtype=dtype)
    assert bool((torch.linalg.matrix_rank(batch.Q) == N // 2).all())
    assert bool((torch.linalg.matrix_rank(batch.A) == 3).all())
    # Exactly n - r zero rows in Q: the singularity is structural, not a rounding accident.
    assert bool(((batch.Q == 0).all(dim=-1).sum(-1) == N - N // 2).all())


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_dual_infeasibility_certificate_is_exact(dtype: torch.dtype) -> None:
    # d = e_j with Q d = 0, p'd < 0, G d <= 0, A d = 0, exactly, for one coordinate j.
    batch = generate("dual_infeasible", 4, N, seed=5, dtype=dtype)
    for i in range(4):
        free = (batch.Q[i] == 0).all(dim=0) & (batch.A[i] == 0).all(dim=0) & (batch.G[i] <= 0).all(dim=0)
        free &= batch.p[i] < 0
        assert int(free.sum()) >= 1


def test_lp_family_has_zero_cost_matrix() -> None:
    assert bool((generate("lp", 2, N).Q == 0).all())


def test_box_shares_its_constraint_matrix() -> None:
    batch = generate("box", 4, N)
    assert not batch.is_batched("G") and batch.is_batched("h")
    assert torch.equal(batch.G, torch.cat([torch.eye(N), -torch.eye(N)]).double())


@pytest.mark.parametrize("n", [3, 4, 10, 17, 50, 100, 333])
def test_control_sizes_add_up_to_n(n: int) -> None:
    nx, nu, T = mpc_sizes(n)
    assert nx >= 1 and nu >= 1 and T >= 1
    assert (T + 1) * nx + T * nu == n


def test_device_argument_is_honoured() -> None:
    # Vacuous where CPU is the only device; test_same_problems_on_cuda checks the placement there.
    batch = generate("box", 2, 5, device=torch.device("cpu"))
    assert all(t.device.type == "cpu" for t in batch.tensors().values())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_same_problems_on_cuda() -> None:
    cpu = generate("random_eq", 2, N, seed=3)
    gpu = generate("random_eq", 2, N, seed=3, device="cuda")
    for name in ("Q", "p", "G", "h", "A", "b"):
        assert getattr(gpu, name).device.type == "cuda", name
        assert torch.equal(getattr(gpu, name).cpu(), getattr(cpu, name)), name


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_a_gpu_is_a_value_error_naming_the_device() -> None:
    with pytest.raises(ValueError, match="device 'cuda': CUDA is not available here"):  # an AssertionError before
        generate("box", 2, 5, device="cuda")


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"family": "nope"}, "family"),
        ({"batch_size": 0}, "batch_size"),
        ({"n": 0}, "n"),
        ({"m": -1}, "m"),
        ({"k": 1.5}, "k"),
        ({"seed": -2}, "seed"),
        ({"dtype": torch.int32}, "dtype"),
        ({"family": "box", "m": 5}, "m"),  # box's m follows from n
        ({"family": "random_eq", "k": N + 1}, "k"),  # more equalities than variables
        ({"family": "lp", "m": N}, "m"),  # lp needs room for its box rows
        ({"family": "primal_infeasible", "m": 1}, "m"),
        ({"family": "control", "n": 2}, "n"),
        ({"device": "gpu0"}, "device"),  # torch's own RuntimeError before
    ],
)
def test_bad_arguments_raise_value_error_naming_them(kwargs: dict, argument: str) -> None:
    args = {"family": "random_eq", "batch_size": 2, "n": N} | kwargs
    with pytest.raises(ValueError, match=argument):
        generate(**args)
