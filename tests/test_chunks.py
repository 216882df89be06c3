"""The set-up's cache-sized pieces of a batch: they cover the batch, and work done piece by piece
gives each problem what the whole batch would."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import pytest
import torch

from qpbench.generators import generate
from qpbench.solver import chunks, solve
from qpbench.solver.chunks import cache_pieces
from qpbench.solver.kkt.dual import _dual_products, condition_estimate, power_start
from qpbench.solver.linalg import cholesky
from qpbench.solver.scaling import equilibrate

T = TypeVar("T")


@pytest.mark.parametrize(("batch_size", "per_problem"), [(1, 10), (10, 2**20), (7, 3 * 2**20), (5, 2**30)])
def test_pieces_cover_the_batch_in_order_within_the_budget(batch_size: int, per_problem: int) -> None:
    pieces = cache_pieces(batch_size, per_problem, torch.device("cpu"))
    covered = [i for s in pieces for i in range(batch_size)[s]]
    assert covered == list(range(batch_size))
    # At most the budget, unless one problem alone is larger than it.
    assert all(s.stop - s.start == 1 or (s.stop - s.start) * per_problem <= chunks._PIECE_BYTES for s in pieces)


def test_other_devices_keep_the_batch_whole() -> None:
    assert cache_pieces(1000, 2**20, torch.device("meta")) == [slice(0, 1000)]


def _whole_then_pieces(fn: Callable[[], T], monkeypatch: pytest.MonkeyPatch) -> tuple[T, T]:
    """fn() with the batch whole, then with every problem a piece of its own."""
    monkeypatch.setattr(chunks, "_PIECE_BYTES", 2**40)
    whole = fn()
    monkeypatch.setattr(chunks, "_PIECE_BYTES", 1)
    return whole, fn()


def test_scaling_in_pieces_equals_the_whole_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    batch = generate("random_eq", 10, 12, seed=4)
    (P, _), (R, _) = _whole_then_pieces(lambda: equilibrate(batch, 10, scale_cost=True), monkeypatch)
    for name in ("QCt", "p", "h", "b", "D", "E", "F", "c"):
        assert torch.equal(getattr(P, name), getattr(R, name)), name


def test_dual_products_and_condition_estimate_in_pieces_equal_the_whole_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    P, _ = equilibrate(generate("optnet_random", 10, 12, seed=5), 10)
    L, ok = cholesky(P.Q.clone(memory_format=torch.contiguous_format))
    assert bool(ok.all())
    v = power_start(10, 12, P.Q)
    whole, pieces = _whole_then_pieces(lambda: (*_dual_products(L, P.C), condition_estimate(P.Q, L, v)), monkeypatch)
    # Equal to rounding: the whole batch's Y' comes from torch's triangular solve stored by
    # columns, the pieces write it by rows, and BLAS rounds the two layouts differently (on some
    # CPUs: 2e-16 of the largest entry, 2e-12 relative on a small one).
    for a, b in zip(whole, pieces, strict=True):
        assert torch.allclose(a, b, rtol=1e-12, atol=1e-14 * float(a.abs().amax()))
    Yt, K, _ = pieces
    assert torch.allclose(Yt @ P.Q, P.C, atol=1e-10)  # Y' = C Q^-1
    assert torch.allclose(K, Yt @ P.C.mT, atol=1e-10)


def test_a_solve_with_its_set_up_in_pieces_gives_the_same_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    batch = generate("optnet_random", 10, 12, seed=6)
    whole, pieces = _whole_then_pieces(lambda: solve(batch), monkeypatch)
    assert whole.statuses() == pieces.statuses()
    assert torch.equal(whole.iterations, pieces.iterations)
    assert torch.allclose(whole.z, pieces.z, atol=1e-10, rtol=0)
