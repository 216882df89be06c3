"""QPBatch: validation of bad input (clear ValueError naming the argument), shapes, residuals."""

from __future__ import annotations

import pytest
import torch

from qpbench.problem import QPBatch, as_batch

F64 = torch.float64


def _valid(B: int = 3, n: int = 4, m: int = 5, k: int = 2) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    U = torch.randn(B, n, n, generator=g, dtype=F64)
    return {
        "Q": U.mT @ U + torch.eye(n, dtype=F64),
        "p": torch.randn(B, n, generator=g, dtype=F64),
        "G": torch.randn(B, m, n, generator=g, dtype=F64),
        "h": torch.rand(B, m, generator=g, dtype=F64),
        "A": torch.randn(B, k, n, generator=g, dtype=F64),
        "b": torch.randn(B, k, generator=g, dtype=F64),
    }


def test_valid_batch_reports_sizes() -> None:
    batch = QPBatch(**_valid())
    assert (batch.batch_size, batch.n, batch.m, batch.k) == (3, 4, 5, 2)
    assert batch.dtype == F64


def test_shared_tensors_broadcast_and_slice() -> None:
    args = _valid()
    args["Q"] = args["Q"][0]  # shared
    args["G"] = args["G"][0]
    batch = QPBatch(**args)
    assert batch.batch_size == 3 and not batch.is_batched("Q")
    assert batch.expanded("Q").shape == (3, 4, 4)
    sub = batch[1:3]
    assert sub.batch_size == 2 and not sub.is_batched("Q")
    assert batch[0].batch_size == 1
    assert torch.equal(batch.batched().Q[2], args["Q"])


def test_a_selection_of_no_problem_is_refused_like_a_batch_of_none() -> None:
    """Construction refuses B = 0, so selecting no problem is an IndexError naming the
    selection, not an empty batch that fails later inside a solver."""
    batch = QPBatch(**_valid())
    for index in (slice(5, None), torch.zeros(0, dtype=torch.long), []):
        with pytest.raises(IndexError, match="selects no problem of a batch of 3"):
            batch[index]


def test_absent_constraints_become_empty() -> None:
    args = _valid()
    batch = QPBatch(Q=args["Q"], p=args["p"])
    assert batch.m == 0 and batch.k == 0
    assert batch.G.shape == (0, 4)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda a: a.update(p=a["p"][:, :3]), "p has n = 3"),
        (lambda a: a.update(h=a["h"][:2]), "mismatched batch sizes"),
        (lambda a: a.update(G=a["G"][:, :, :2]), "G has n = 2"),
        (lambda a: a.update(b=a["b"][:, :1]), "b has k = 1"),
        (lambda a: a.update(Q=a["Q"].unsqueeze(0)), "Q must have shape"),
        (lambda a: a["p"].__setitem__((0, 0), float("nan")), "p contains NaN or Inf"),
        (lambda a: a["G"].__setitem__((0, 0, 1), float("inf")), "G contains NaN or Inf"),
        (lambda a: a["h"].__setitem__((1, 1), float("-inf")), r"h\[1, 1\] = -inf: .* can never be met"),
        (lambda a: a["h"].__setitem__((1, 2), -1e21), r"h\[1, 2\] = -1e\+21"),
        (lambda a: a["h"].__setitem__((0, 1), float("nan")), r"h\[0, 1\] is NaN"),
        (lambda a: a["Q"].__setitem__((0, 0, 1), 5.0), "Q is not symmetric"),
        (lambda a: a.update(Q=-a["Q"]), "Q is not positive semidefinite"),
        (lambda a: a.update(A=a["A"].float()), "mixed dtypes"),
        (lambda a: a.update(b=a["b"].to(torch.int64)), "b has dtype torch.int64"),
        (lambda a: a.update(h=None), "G and h must be given together"),
        (lambda a: a.update(Q=a["Q"].numpy()), "Q must be a torch.Tensor"),
    ],
)
def test_bad_input_raises_value_error_naming_the_argument(change, message: str) -> None:
    args = _valid()
    change(args)
    with pytest.raises(ValueError, match=message):
        QPBatch(**args)


def test_mixed_devices_raise() -> None:
    args = _valid()
    args["p"] = args["p"].to("meta")
    with pytest.raises(ValueError, match="mixed devices"):
        QPBatch(**args)


def test_residuals_of_a_known_kkt_point() -> None:
    # min 1/2 |z|^2 - z1  s.t. z1 <= 0.5: z* = (0.5, 0), lam* = 0.5.
    Q = torch.eye(2, dtype=F64).unsqueeze(0)
    batch = QPBatch(
        Q=Q, p=torch.tensor([[-1.0, 0.0]], dtype=F64), G=torch.tensor([[[1.0, 0.0]]], dtype=F64),
        h=torch.tensor([[0.5]], dtype=F64),
    )
    res = batch.residuals(torch.tensor([[0.5, 0.0]], dtype=F64), torch.tensor([[0.5]], dtype=F64))
    assert all(float(v) < 1e-15 for v in res.values())
    bad = batch.residuals(torch.tensor([[1.0, 0.0]], dtype=F64), torch.tensor([[0.0]], dtype=F64))
    assert float(bad["primal"]) == pytest.approx(0.5)
    assert float(batch.objective(torch.tensor([[0.5, 0.0]], dtype=F64))) == pytest.approx(-0.375)


def test_rows_without_bound_are_accepted_and_ignored_by_the_residuals() -> None:
    # min 1/2 |z|^2 - z1  s.t. z1 <= 0.5, z2 <= +inf (no bound), z2 <= 1e20 (no bound either).
    G = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]]], dtype=F64)
    h = torch.tensor([[0.5, float("inf"), 1e20]], dtype=F64)
    batch = QPBatch(Q=torch.eye(2, dtype=F64), p=torch.tensor([[-1.0, 0.0]], dtype=F64), G=G, h=h)
    # A multiplier on an absent row is ignored: the row does not exist.
    res = batch.residuals(torch.tensor([[0.5, 0.0]], dtype=F64), torch.tensor([[0.5, 3.0, 3.0]], dtype=F64))
    assert all(float(v) < 1e-15 for v in res.values()), res


def test_as_batch_treats_empty_tensors_as_no_rows() -> None:
    args = _valid()
    batch = as_batch(args["Q"], args["p"], torch.zeros(0, 4, dtype=F64), torch.zeros(0, dtype=F64))
    assert batch.m == 0 and batch.k == 0
