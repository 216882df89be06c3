"""Gradient checker: finite differences, error table, flags, conventions, CLI."""

from __future__ import annotations

import json
import sys
import types

import pytest
import torch

import qpbench.adapters
from qpbench import cli
from qpbench.adapters.base import Adapter, Capabilities, Tolerance
from qpbench.gradcheck import check_gradients, finite_differences, loss_weights
from qpbench.gradcheck.active_set import kkt_solve, reference_active_set
from qpbench.gradcheck.directions import directions
from qpbench.problem import NAMES, QPBatch
from qpbench.reference import reference_solve

F64 = torch.float64


class ExactAdapter(Adapter):
    """Differentiable by construction: the active-set KKT solve written in torch, the active set
    taken from the reference. ``scale`` multiplies the gradient (not the solution) to fake a bug;
    ``average_shared`` divides shared tensors' gradients by B (qpth's mean convention)."""

    name = "exact"
    capabilities = Capabilities(batched=True, differentiable=True, dtypes=(F64, torch.float32))

    def __init__(self, name: str = "exact", scale: float = 1.0, average_shared: bool = False,
                 convention: str = "sum") -> None:
        self.name, self.scale, self.average_shared = name, scale, average_shared
        self.gradient_convention = convention

    def _import(self) -> None:
        return None

    def setup(self, batch, tolerance, time_limit):  # pragma: no cover - not used by gradcheck
        raise NotImplementedError

    def solve(self, prepared):  # pragma: no cover - not used by gradcheck
        raise NotImplementedError

    def options(self, tolerance, time_limit):
        return {}

    def differentiable_solve(self, batch: QPBatch, tolerance: Tolerance) -> torch.Tensor:
        if self.average_shared:
            for name in NAMES:
                t = getattr(batch, name)
                if t.requires_grad and not batch.is_batched(name):
                    t.register_hook(lambda g, B=batch.batch_size: g / B)
        active, _, _ = reference_active_set(batch)
        z = kkt_solve(*(batch.expanded(k) for k in NAMES), active.to(batch.device)).z
        return z + (self.scale - 1.0) * (z - z.detach())


class RaisingAdapter(ExactAdapter):
    def differentiable_solve(self, batch, tolerance):
        raise RuntimeError("backward not implemented")


def strict_batch(B: int = 3, n: int = 5, m: int = 6, k: int = 2, seed: int = 0, shared: tuple[str, ...] = ()
                 ) -> QPBatch:
    """Random strictly convex QPs with a planted optimum: about half the rows active with
    multipliers in [0.5, 1.5], the rest with slacks in [0.5, 1.5] (strict complementarity), and
    linearly independent active constraints."""
    g = torch.Generator().manual_seed(seed)

    def rand(*shape):
        return torch.rand(*shape, generator=g, dtype=F64)

    def randn(*shape):
        return torch.randn(*shape, generator=g, dtype=F64)

    L = randn(B, n, n)
    Q = L @ L.transpose(1, 2) / n + 0.5 * torch.eye(n, dtype=F64)
    z0, G, A, nu0 = randn(B, n), randn(B, m, n), randn(B, k, n), randn(B, k)
    act = rand(B, m) < 0.5
    act &= act.cumsum(-1) <= n - k - 1  # fewer active rows than free directions: LICQ holds
    lam0 = (0.5 + rand(B, m)) * act
    h = torch.einsum("bmn,bn->bm", G, z0) + (0.5 + rand(B, m)) * ~act
    b = torch.einsum("bkn,bn->bk", A, z0)
    p = -torch.einsum("bij,bj->bi", Q, z0) - torch.einsum("bmn,bm->bn", G, lam0) - torch.einsum(
        "bkn,bk->bn", A, nu0)
    tensors = {"Q": Q, "p": p, "G": G, "h": h, "A": A, "b": b}
    if shared:
        # Shared tensors come from problem 0; re-plant p so every problem keeps its optimum.
        for name in shared:
            tensors[name] = tensors[name][0]
        full = QPBatch(**tensors, check="none").batched()
        Qe, Ge, Ae = full.Q, full.G, full.A
        he = torch.einsum("bmn,bn->bm", Ge, z0) + (0.5 + rand(B, m)) * ~act
        tensors["h"] = he if "h" not in shared else tensors["h"]
        if "p" not in shared:
            tensors["p"] = -torch.einsum("bij,bj->bi", Qe, z0) - torch.einsum("bmn,bm->bn", Ge, lam0) - \
                torch.einsum("bkn,bk->bn", Ae, nu0)
    return QPBatch(**tensors)


# ----------------------------------------------------------------------------- finite differences
def test_finite_differences_match_the_closed_form_gradient_of_an_unconstrained_qp():
    # z = -Q^-1 p, so d(c'z)/dp = -Q^-1 c and d(c'z)/dQ = -sym(Q^-1 c z').
    batch = strict_batch(B=2, n=4, m=0, k=0, seed=3)
    c = loss_weights(batch, seed=5)
    gen = torch.Generator().manual_seed(0)
    dirs = {name: directions(batch, name, "full", 0, gen) for name in NAMES}
    result = finite_differences(batch, c, dirs)
    assert result.flags == []
    Qinv = torch.linalg.inv(batch.Q)
    z = -(Qinv @ batch.p.unsqueeze(-1)).squeeze(-1)
    w = (Qinv @ c.unsqueeze(-1)).squeeze(-1)
    torch.testing.assert_close(result.fd["p"].T, -w, rtol=1e-8, atol=1e-10)
    grad_Q = -0.5 * (w.unsqueeze(-1) * z.unsqueeze(-2) + z.unsqueeze(-1) * w.unsqueeze(-2))
    expected = (grad_Q.unsqueeze(0) * dirs["Q"]).sum((-2, -1))  # along E_ij + E_ji
    torch.testing.assert_close(result.fd["Q"], expected, rtol=1e-7, atol=1e-9)



def test_active_set_differences_agree_with_independent_reference_resolves():
    # The finite differences use exact active-set solves; re-solving each perturbed problem from
    # scratch with Clarabel (tolerance 1e-12) must give the same derivatives.
    batch = strict_batch(B=1, n=4, m=3, k=1, seed=7)
    assert int(reference_active_set(batch)[0].sum()) >= 1  # some row is active
    c = loss_weights(batch, seed=0)
    gen = torch.Generator().manual_seed(0)
    dirs = {name: directions(batch, name, "directional", 1, gen) for name in NAMES}
    result = finite_differences(batch, c, dirs)
    assert result.flags == []
    for name, D in dirs.items():
        step = result.steps[name]
        loss = []
        for sign in (1.0, -1.0):
            moved = {k: batch.expanded(k) + (sign * step * D[0] if k == name else 0.0) for k in NAMES}
            z = reference_solve(QPBatch(**moved, check="none"), tolerance=1e-12).z
            loss.append(float((c * z).sum()))
        independent = (loss[0] - loss[1]) / (2 * step)
        assert independent == pytest.approx(float(result.fd[name][0, 0]), rel=1e-6, abs=1e-9), name

def test_full_directions_cover_every_entry_and_keep_q_symmetric():
    batch = strict_batch(B=2, n=3, m=2, k=1, shared=("G",))
    gen = torch.Generator().manual_seed(0)
    dQ = directions(batch, "Q", "full", 0, gen)
    assert dQ.shape == (6, 2, 3, 3)  # upper triangle of a 3 x 3
    torch.testing.assert_close(dQ, dQ.transpose(-1, -2))
    assert directions(batch, "G", "full", 0, gen).shape == (6, 2, 2, 3)
    rnd = directions(batch, "G", "directional", 5, gen)
    assert rnd.shape == (5, 2, 2, 3)
    torch.testing.assert_close(rnd[:, 0], rnd[:, 1])  # a shared tensor moves the same in every problem
    rnd_p = directions(batch, "p", "directional", 5, gen)
    assert not torch.allclose(rnd_p[:, 0], rnd_p[:, 1])
    assert directions(strict_batch(B=2, n=3, m=0, k=0), "G", "full", 0, gen).shape[0] == 0


# ----------------------------------------------------------------------------- check_gradients
@pytest.mark.parametrize("mode", ["full", "directional"])
def test_exact_gradients_pass_and_a_gradient_off_by_ten_percent_fails(mode):
    batch = strict_batch(B=3, n=5, m=6, k=2)
    report = check_gradients(batch, [ExactAdapter(), ExactAdapter("wrong", scale=1.1)], mode, threshold=1e-6)
    assert report.problems_compared == 3 and report.flagged.empty
    exact = report.table[report.table.solver == "exact"]
    assert set(exact.parameter) == set(NAMES)
    assert exact.max_rel_err.max() < 1e-7
    assert exact.forward_err.max() < 1e-12
    assert exact.passed.all()
    worst_wrong = report.worst("wrong")
    assert worst_wrong.max_rel_err > 1e-2 and not worst_wrong.passed
    assert report.failing_solvers() == ["wrong"]
    assert not report.passed()
    cross = report.cross.set_index("parameter")
    assert cross.max_rel_diff.max() > 1e-2  # the two disagree by about 10 %
    assert set(cross.index) == set(NAMES)


def test_only_the_exact_solver_passes_alone():
    report = check_gradients(strict_batch(B=2, n=4, m=4, k=1, seed=1), [ExactAdapter()], "full")
    assert report.passed()
    assert "RESULT: ok" in report.format()


def test_shared_tensors_are_compared_in_the_sum_convention():
    batch = strict_batch(B=3, n=4, m=5, k=1, seed=2, shared=("Q", "G", "b"))
    assert not batch.is_batched("Q") and not batch.is_batched("G")
    honest_mean = ExactAdapter("mean", average_shared=True, convention="mean")
    mislabelled = ExactAdapter("mislabelled", average_shared=True, convention="sum")
    report = check_gradients(batch, [ExactAdapter(), honest_mean, mislabelled], "full")
    table = report.table.set_index(["solver", "parameter"])
    assert table.loc[("exact", "Q"), "layout"] == "shared"
    assert table.loc[("exact", "p"), "layout"] == "batched"
    assert report.failing_solvers() == ["mislabelled"]
    # Only the shared tensors of the mislabelled adapter are wrong (by a factor 3 = B).
    wrong = report.table[(report.table.solver == "mislabelled") & ~report.table.passed]
    assert set(wrong.parameter) == {"Q", "G", "b"}
    assert "SUM convention" in report.format()
    cross = report.cross.set_index(["solver_a", "solver_b", "parameter"])
    assert cross.loc[("exact", "mean", "Q"), "max_rel_diff"] < 1e-10


def test_degenerate_and_nearly_switching_problems_are_flagged_not_counted():
    # Problem 0: the unconstrained optimum z_0 = 0 lies on the row z_0 <= 0: slack and multiplier
    #            are both zero (weakly active, not differentiable).
    # Problem 1: the unconstrained optimum z_0 = 1e-7 is 1e-7 inside z_0 <= 2e-7, so a 1e-5 step
    #            makes the row active.
    # Problem 2: the row z_0 <= 0.5 is active with multiplier 0.5: an ordinary point, still compared.
    Q = torch.eye(2, dtype=F64).repeat(3, 1, 1)
    p = torch.tensor([[0.0, 1.0], [-1e-7, 1.0], [-1.0, 1.0]], dtype=F64)
    G = torch.tensor([[1.0, 0.0]], dtype=F64).repeat(3, 1, 1)
    h = torch.tensor([[0.0], [2e-7], [0.5]], dtype=F64)
    batch = QPBatch(Q=Q, p=p, G=G, h=h)
    wrong = ExactAdapter("wrong", scale=1.1)
    report = check_gradients(batch, [ExactAdapter(), wrong], "full")
    assert sorted(report.flagged.problem) == [0, 1]
    assert report.problems_compared == 1
    reasons = set(report.flagged.reason)
    assert reasons <= {"near-degenerate constraint", "active set changes within the step"}
    assert report.failing_solvers() == ["wrong"]  # errors on problem 2 still count
    assert set(report.table[report.table.solver == "wrong"].worst_problem) == {2}


def test_nothing_compared_when_every_problem_is_flagged():
    batch = QPBatch(Q=torch.eye(2, dtype=F64), p=torch.zeros(2, dtype=F64),
                    G=torch.tensor([[1.0, 0.0]], dtype=F64), h=torch.zeros(1, dtype=F64))
    report = check_gradients(batch, [ExactAdapter()], "full")
    assert report.problems_compared == 0 and report.table.empty
    assert not report.passed()
    assert "nothing compared" in report.format()


def test_an_adapter_that_raises_is_reported_as_failed():
    report = check_gradients(strict_batch(B=2, n=3, m=2, k=0), [ExactAdapter(), RaisingAdapter("broken")])
    assert "broken" in report.failed and "backward not implemented" in report.failed["broken"]
    assert report.failing_solvers() == ["broken"]
    assert not report.passed()


def test_float32_gradients_are_compared_against_float64_differences():
    batch = strict_batch(B=2, n=4, m=4, k=1, seed=4).to(dtype=torch.float32)
    report = check_gradients(batch, [ExactAdapter()], "full", threshold=1e-3)
    assert report.meta["dtype"] == "float32"
    worst = report.worst("exact").max_rel_err
    assert 1e-9 < worst < 1e-3  # float32 rounding is visible, but small


def test_bad_arguments_raise_value_errors_naming_them():
    batch = strict_batch(B=1, n=3, m=2, k=0)

    class Plain(ExactAdapter):
        capabilities = Capabilities(batched=True, differentiable=False)

    with pytest.raises(ValueError, match="mode"):
        check_gradients(batch, [ExactAdapter()], "bogus")
    with pytest.raises(ValueError, match="adapters"):
        check_gradients(batch, [Plain("plain")])
    with pytest.raises(ValueError, match="threshold"):
        check_gradients(batch, [ExactAdapter()], threshold=0)
    with pytest.raises(ValueError, match="step"):
        check_gradients(batch, [ExactAdapter()], step=-1.0)
    with pytest.raises(ValueError, match="directions"):
        check_gradients(batch, [ExactAdapter()], "directional", directions_per_parameter=0)
    with pytest.raises(ValueError, match="gradient_convention"):
        check_gradients(batch, [ExactAdapter(convention="median")])


def test_report_serializes_to_json():
    report = check_gradients(strict_batch(B=2, n=3, m=2, k=1), [ExactAdapter()], "directional")
    data = json.loads(json.dumps(report.to_dict()))
    assert data["passed"] is True
    assert {row["parameter"] for row in data["table"]} == set(NAMES)
    assert data["meta"]["mode"] == "directional"


# ----------------------------------------------------------------------------- CLI
@pytest.fixture
def fake_registry(monkeypatch):
    adapters = {"exact": ExactAdapter(), "wrong": ExactAdapter("wrong", scale=1.1)}

    def get_adapter(name):
        if name not in adapters:
            raise ValueError(f"unknown solver {name!r}; known: {sorted(adapters)}")
        return adapters[name]

    module = types.SimpleNamespace(get_adapter=get_adapter,
                                   available_adapters=lambda: list(adapters.values()))
    monkeypatch.setitem(sys.modules, "qpbench.adapters.registry", module)
    monkeypatch.setattr(qpbench.adapters, "registry", module, raising=False)
    return adapters


def test_cli_exit_codes_and_json(fake_registry, tmp_path, capsys):
    common = ["gradcheck", "--family", "random_eq", "--n", "4", "--m", "3", "--k", "1", "--batch", "2"]
    out = tmp_path / "gc.json"
    assert cli.main([*common, "--solvers", "exact", "--json", str(out)]) == 0
    assert json.loads(out.read_text())["passed"] is True
    assert "exact" in capsys.readouterr().out
    assert cli.main([*common, "--solvers", "exact", "wrong"]) == 1
    assert "RESULT: FAIL (wrong)" in capsys.readouterr().out
    assert cli.main([*common, "--solvers", "nosuch"]) == 2


def test_cli_bad_input_names_the_option_in_one_line(fake_registry, capsys):
    common = ["gradcheck", "--family", "random_eq", "--n", "4", "--batch", "2"]
    assert cli.main([*common, "--solvers", "nosuch"]) == 2
    assert "qpbench gradcheck: error: --solvers: unknown solver 'nosuch'" in capsys.readouterr().err
    # a device torch does not know (or CUDA on a machine without it) was a traceback
    assert cli.main([*common, "--solvers", "exact", "--device", "gpu0"]) == 2
    assert "qpbench gradcheck: error: device must be a torch device" in capsys.readouterr().err


# ----------------------------------------------------------------------------- the in-house layer
@pytest.mark.parametrize("shared", [(), ("Q", "G", "A")])
def test_inhouse_gradients_match_finite_differences_on_strictly_complementary_problems(shared):
    from qpbench.adapters.inhouse import InHouseAdapter

    batch = strict_batch(B=3, n=5, m=6, k=2, seed=1, shared=shared)
    report = check_gradients(batch, [InHouseAdapter()], "full", threshold=1e-6)
    assert report.problems_compared == 3
    assert report.passed(), report.format()
    assert set(report.table.parameter) == set(NAMES)


def test_inhouse_gradients_match_finite_differences_on_optnet_random():
    from qpbench.adapters.inhouse import InHouseAdapter
    from qpbench.generators import generate

    batch = generate("optnet_random", batch_size=3, n=8, seed=0)
    report = check_gradients(batch, [InHouseAdapter()], "full", threshold=1e-6)
    assert report.problems_compared == 3
    assert report.passed(), report.format()


def test_inhouse_float32_gradients_are_within_float32_accuracy():
    # float32 cannot reach the 'high' level; at 'mid' the errors measured were 8e-7 .. 4e-5.
    from qpbench.adapters.inhouse import InHouseAdapter
    from qpbench.generators import generate

    batch = generate("optnet_random", batch_size=3, n=8, seed=0, dtype=torch.float32)
    report = check_gradients(batch, [InHouseAdapter()], "full", threshold=1e-3, tolerance="mid")
    assert report.passed(), report.format()
    assert not report.warnings


@pytest.mark.parametrize(("family", "seed"), [("lasso", 0), ("lp", 1)])
def test_inhouse_gradients_match_finite_differences_when_q_is_singular(family, seed):
    # Regression test: before the adjoint weights were clipped these had relative errors of 1.0.
    from qpbench.adapters.inhouse import InHouseAdapter
    from qpbench.generators import generate

    batch = generate(family, batch_size=2, n=8, seed=seed)
    report = check_gradients(batch, [InHouseAdapter()], "full", threshold=1e-6)
    assert report.problems_compared == 2
    assert report.passed(), report.format()


def test_auto_mode_uses_random_directions_above_ten_variables():
    small = check_gradients(strict_batch(B=1, n=4, m=2, k=1), [ExactAdapter()])
    large = check_gradients(strict_batch(B=1, n=12, m=4, k=1), [ExactAdapter()], directions_per_parameter=3)
    assert small.meta["mode"] == "full" and large.meta["mode"] == "directional"
    assert set(large.table.compared) == {3}  # three directions per parameter, one problem
    assert large.passed(), large.format()
