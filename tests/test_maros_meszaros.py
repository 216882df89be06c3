"""Maros–Mészáros loader: conversion of l <= Ax <= u, reference objectives, listing, grouping."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from qpbench.loaders import maros_meszaros as mm
from qpbench.reference import reference_solve
from qpbench.status import Status


def test_data_dir_prefers_the_argument_then_the_environment(
    maros_meszaros_dir: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(mm.ENV_VAR, str(tmp_path))
    assert mm.data_dir(maros_meszaros_dir) == maros_meszaros_dir
    assert mm.data_dir() == tmp_path


def test_data_dir_without_argument_or_variable_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(mm.ENV_VAR, raising=False)
    with pytest.raises(FileNotFoundError, match=mm.ENV_VAR):
        mm.data_dir()


def test_data_dir_that_is_not_a_folder(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="data_dir"):
        mm.data_dir(tmp_path / "missing")


def test_conversion_of_bounds_to_rows() -> None:
    # Rows: a two-sided row, an equality, a one-sided upper, a one-sided lower, a free row.
    A = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0], [7.0, 8.0], [9.0, 10.0]])
    lower = np.array([-1.0, 2.0, -1e20, 0.5, -1e20])
    upper = np.array([1.0, 2.0 + 1e-12, 3.0, 1e20, 1e20])
    qp = mm.convert(np.eye(2), np.zeros(2), A, lower, upper)
    np.testing.assert_array_equal(qp["A"], A[[1]])
    np.testing.assert_array_equal(qp["b"], [2.0])
    np.testing.assert_array_equal(qp["G"], np.vstack([A[[0, 2]], -A[[0, 3]]]))
    np.testing.assert_array_equal(qp["h"], [1.0, 3.0, 1.0, -0.5])


def test_hs21_converts_to_the_known_problem(maros_meszaros_dir: Path) -> None:
    # HS21: min 0.01 x1^2 + x2^2 - 100 s.t. 10 x1 - x2 >= 10, 2 <= x1 <= 50, -50 <= x2 <= 50.
    batch = mm.load("HS21", maros_meszaros_dir)
    assert (batch.batch_size, batch.n, batch.m, batch.k) == (1, 2, 5, 0)
    torch.testing.assert_close(batch.Q[0], torch.tensor([[0.02, 0.0], [0.0, 2.0]], dtype=torch.float64))
    assert batch.meta["objective_offset"] == -100.0
    assert batch.meta["reference_objective"] == pytest.approx(-99.96)
    assert (batch.meta["problem"], batch.meta["n"], batch.meta["original_m"]) == ("HS21", 2, 3)
    # Upper rows first (x1 <= 50, x2 <= 50), then the lower sides negated.
    torch.testing.assert_close(batch.h[0], torch.tensor([50.0, 50.0, -10.0, -2.0, 50.0], dtype=torch.float64))


@pytest.mark.parametrize(("name", "n", "m", "k"), [("HS21", 2, 5, 0), ("HS35", 3, 4, 0)])
def test_reference_objective_matches_published_value(
    maros_meszaros_dir: Path, name: str, n: int, m: int, k: int
) -> None:
    batch = mm.load(name, maros_meszaros_dir)
    assert (batch.n, batch.m, batch.k) == (n, m, k)
    ref = reference_solve(batch)
    assert ref.status == [Status.SOLVED]
    objective = float(ref.objective[0]) + batch.meta["objective_offset"]
    published = json.loads((maros_meszaros_dir / "OPTCOSTS.json").read_text())[name]
    assert objective == pytest.approx(published, rel=1e-6)


def test_every_file_loads(maros_meszaros_dir: Path) -> None:
    names = mm.list_problems(maros_meszaros_dir)
    assert len(names) == len(list(maros_meszaros_dir.glob("*.mat")))
    costs = json.loads((maros_meszaros_dir / "OPTCOSTS.json").read_text())
    for name in names:
        batch = mm.load(name, maros_meszaros_dir)
        assert batch.batch_size == 1 and batch.n == batch.meta["n"] and batch.n >= 1
        assert batch.m + batch.k >= 1, name
        assert batch.meta["reference_objective"] == costs.get(name)
        assert isinstance(batch.meta["convex"], bool)
    if "VALUES" in names:  # the one problem of the set whose Q is indefinite
        assert mm.load("VALUES", maros_meszaros_dir).meta["convex"] is False
        assert mm.load("HS21", maros_meszaros_dir).meta["convex"] is True


def test_list_problems_filters_by_size(maros_meszaros_dir: Path) -> None:
    small = mm.list_problems(maros_meszaros_dir, max_n=5)
    assert "HS21" in small and "CVXQP1_S" not in small
    for name in small:
        assert mm.problem_sizes(name, maros_meszaros_dir)[0] <= 5
    few_rows = mm.list_problems(maros_meszaros_dir, max_rows=4)
    assert "HS35" in few_rows and "HS21" not in few_rows  # HS35 has 4 rows, HS21 5
    assert "VALUES" not in mm.list_problems(maros_meszaros_dir, convex_only=True)


@pytest.mark.parametrize(("kwargs", "argument"), [({"max_n": -1}, "max_n"), ({"max_rows": 1.5}, "max_rows")])
def test_list_problems_rejects_bad_limits(maros_meszaros_dir: Path, kwargs: dict, argument: str) -> None:
    with pytest.raises(ValueError, match=argument):
        mm.list_problems(maros_meszaros_dir, **kwargs)


def test_unknown_problem_names_the_argument(maros_meszaros_dir: Path) -> None:
    with pytest.raises(ValueError, match="name"):
        mm.load("NOT_A_PROBLEM", maros_meszaros_dir)


def test_a_bad_device_names_the_argument(maros_meszaros_dir: Path) -> None:
    with pytest.raises(ValueError, match="device must be a torch device"):  # torch's RuntimeError before
        mm.load("HS21", maros_meszaros_dir, device="gpu0")


def test_load_to_float32(maros_meszaros_dir: Path) -> None:
    batch = mm.load("HS35", maros_meszaros_dir, dtype=torch.float32)
    assert all(t.dtype == torch.float32 for t in batch.tensors().values())


def test_group_without_padding_batches_equal_sizes(maros_meszaros_dir: Path) -> None:
    groups = mm.load_group(["HS268", "HS21", "S268"], maros_meszaros_dir)
    assert [g.meta["problems"] for g in groups] == [["HS268", "S268"], ["HS21"]]
    assert groups[0].batch_size == 2 and groups[0].meta["padded"] is False


def test_padding_keeps_every_objective(maros_meszaros_dir: Path) -> None:
    names = ["HS21", "HS35", "HS51", "TAME"]  # inequality-only, equality-only and mixed
    (batch,) = mm.load_group(names, maros_meszaros_dir, pad=True)
    sizes = [mm.problem_sizes(name, maros_meszaros_dir) for name in names]
    k = max(s[2] for s in sizes)
    assert batch.batch_size == 4
    assert batch.k == k and batch.m == max(s[1] for s in sizes)
    assert batch.n == max(s[0] + k - s[2] for s in sizes)
    batch.validate(psd=True)
    ref = reference_solve(batch)
    assert ref.status == [Status.SOLVED] * 4
    for i, (name, (n_i, _, _)) in enumerate(zip(names, sizes, strict=True)):
        single = reference_solve(mm.load(name, maros_meszaros_dir))
        assert float(ref.objective[i]) == pytest.approx(float(single.objective[0]), rel=1e-8, abs=1e-8)
        torch.testing.assert_close(ref.z[i, :n_i], single.z[0], rtol=1e-6, atol=1e-6)
        assert float(ref.z[i, n_i:].abs().sum()) < 1e-8  # padding variables stay at 0


def test_group_needs_names(maros_meszaros_dir: Path) -> None:
    with pytest.raises(ValueError, match="names"):
        mm.load_group([], maros_meszaros_dir)
