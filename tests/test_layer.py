"""The differentiable layer: gradcheck, agreement with finite differences, conventions, training."""

from __future__ import annotations

import pytest
import torch

from qpbench.generators import generate
from qpbench.layer import QPFunction, QPLayer, adjoint_solve
from qpbench.solver import SolverSettings, solve

F64 = torch.float64
TIGHT = SolverSettings(eps_abs=1e-11, eps_rel=0.0)


def _args(family: str, seed: int = 0, B: int = 2, n: int = 5) -> list[torch.Tensor | None]:
    batch = generate(family, B, n, seed=seed)
    return [None if t.numel() == 0 else t.clone().requires_grad_() for t in batch.tensors().values()]


def _fn(Q, p, G, h, A, b):
    return QPFunction.apply((Q + Q.mT) / 2, p, G, h, A, b, TIGHT)


# Differentiable families (a unique, non-degenerate solution). LP-like families are excluded:
# an LP's solution is piecewise constant in its data (vertex solutions), so its gradient is
# zero or undefined; the 'box' family exercises a regularized-Q problem with many active bounds.
@pytest.mark.parametrize("family", ["optnet_random", "random_eq", "equality_only", "inequality_only", "box"])
def test_autograd_gradcheck(family: str) -> None:
    args = _args(family)
    inputs = [a for a in args if a is not None]
    present = [a is not None for a in args]

    def wrapped(*xs):
        it = iter(xs)
        full = [next(it) if keep else None for keep in present]
        return _fn(*full)

    assert torch.autograd.gradcheck(wrapped, inputs, eps=1e-6, atol=1e-5, rtol=1e-4)


def test_shared_parameter_gradient_is_the_sum_over_the_batch() -> None:
    batch = generate("optnet_random", 3, 5, seed=1)
    Q_shared = batch.Q[0].clone().requires_grad_()
    z = QPFunction.apply(Q_shared, batch.p, batch.G, batch.h, None, None, TIGHT)
    z.sum().backward()
    total = torch.zeros_like(Q_shared)
    for i in range(3):
        Qi = batch.Q[0].clone().requires_grad_()
        one = batch[i]
        QPFunction.apply(Qi, one.p, one.G, one.h, None, None, TIGHT).sum().backward()
        total += Qi.grad
    assert torch.allclose(Q_shared.grad, total, atol=1e-10)


def test_unsolved_problems_get_zero_gradient_and_a_warning() -> None:
    good = generate("optnet_random", 2, 5, seed=0)
    bad = generate("primal_infeasible", 1, 5, m=good.m, seed=0)
    p = torch.cat([good.p, bad.p]).requires_grad_()
    G = torch.cat([good.G, bad.G])
    h = torch.cat([good.h, bad.h])
    Q = torch.cat([good.Q, bad.Q])
    z = QPFunction.apply(Q, p, G, h, None, None, None)
    with pytest.warns(RuntimeWarning, match=r"problems \[2\]"):
        z.sum().backward()
    assert torch.isfinite(p.grad).all()
    assert torch.all(p.grad[2] == 0) and torch.any(p.grad[0] != 0)


def test_gradients_match_central_differences_to_1e6() -> None:
    batch = generate("random_eq", 2, 6, seed=4)
    c = torch.randn(2, 6, dtype=F64, generator=torch.Generator().manual_seed(0))
    p = batch.p.clone().requires_grad_()
    h = batch.h.clone().requires_grad_()
    z = QPFunction.apply(batch.Q, p, batch.G, h, batch.A, batch.b, TIGHT)
    (c * z).sum().backward()

    def loss(pp, hh):
        sol = solve(type(batch)(Q=batch.Q, p=pp, G=batch.G, h=hh, A=batch.A, b=batch.b), TIGHT)
        return float((c * sol.z).sum())

    step = 1e-6
    for name, tensor, grad in (("p", batch.p, p.grad), ("h", batch.h, h.grad)):
        fd = torch.zeros_like(tensor)
        for idx in torch.cartesian_prod(*(torch.arange(s) for s in tensor.shape)):
            up, down = tensor.clone(), tensor.clone()
            up[tuple(idx)] += step
            down[tuple(idx)] -= step
            args = (up, batch.h) if name == "p" else (batch.p, up)
            args_d = (down, batch.h) if name == "p" else (batch.p, down)
            fd[tuple(idx)] = (loss(*args) - loss(*args_d)) / (2 * step)
        rel = (fd - grad).abs().max() / grad.abs().max().clamp_min(1e-12)
        assert rel < 1e-6, f"{name}: relative error {float(rel):.2e}"


def test_adjoint_reuses_the_forward_system() -> None:
    batch = generate("optnet_random", 2, 6, seed=0)
    sol = solve(batch)
    dz, dlam, dnu = adjoint_solve(sol, torch.ones(2, 6, dtype=F64))
    assert dz.shape == (2, 6) and dlam.shape == (2, batch.m) and dnu.shape == (2, 0)
    assert sol.info.groups[0].kkt.prob.Q.shape[0] == 2  # the full batch, not a compacted working set


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_training_a_qp_layer_reduces_the_loss(dtype: torch.dtype) -> None:
    torch.manual_seed(0)
    n, m = 6, 8
    teacher = QPLayer(n, m, seed=1, dtype=F64)
    x = torch.randn(64, 4, dtype=F64)
    proj = torch.randn(4, n, dtype=F64)
    with torch.no_grad():
        target = teacher(x @ proj)
    student = torch.nn.Sequential(torch.nn.Linear(4, n).to(dtype), QPLayer(n, m, seed=2, dtype=dtype))
    opt = torch.optim.Adam(student.parameters(), lr=0.05)
    losses = []
    for _ in range(15):
        opt.zero_grad()
        loss = (student(x.to(dtype)).to(F64) - target).square().mean()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.5 * losses[0], losses


def test_layer_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="k"):
        QPLayer(3, 2, k=3)
    layer = QPLayer(3, 2)
    with pytest.raises(ValueError, match="last dimension n=3"):
        layer(torch.zeros(2, 4, dtype=F64))
    with pytest.raises(ValueError, match="unknown overrides"):
        layer(torch.zeros(2, 3, dtype=F64), R=torch.eye(3))


def test_rows_given_per_call_constrain_a_layer_built_without_rows() -> None:
    # QPLayer(n, m=0) used to drop a G, h given to forward (and k=0 an A, b) without a word
    p = torch.tensor([[-2.0, -3.0, 1.0]], dtype=F64, requires_grad=True)  # unconstrained: z = -Q^-1 p
    G, h = torch.eye(3, dtype=F64), torch.zeros(3, dtype=F64)
    z = QPLayer(3, 0, seed=0)(p, G=G, h=h)
    assert bool((z <= 1e-6).all()), z
    z.sum().backward()
    assert p.grad is not None and torch.isfinite(p.grad).all()
    A, b = torch.ones(1, 3, dtype=F64), torch.ones(1, dtype=F64)
    z = QPLayer(3, 2, seed=0)(p.detach(), A=A, b=b)
    assert torch.allclose(z.sum(-1), b, atol=1e-6), z
    with pytest.raises(ValueError, match="h"):  # h without rows to bound is an error, not ignored
        QPLayer(3, 0)(p.detach(), h=torch.ones(2, dtype=F64))


def test_gradients_on_the_gradcheck_families_meet_the_stated_accuracy() -> None:
    # Against central finite differences (float64, full Jacobians): every parameter's relative
    # error <= 1e-6 on every problem, and the median over families and parameters <= 1e-7.
    import statistics

    from qpbench.adapters.inhouse import InHouseAdapter
    from qpbench.gradcheck import check_gradients

    errors = []
    for family in ["optnet_random", "random_eq", "inequality_only", "box", "lasso", "lp"]:
        report = check_gradients(generate(family, 2, 8, seed=0), [InHouseAdapter()], "full", threshold=1e-6)
        assert report.problems_compared >= 1, family
        assert report.passed(), report.format()
        errors += report.table["max_rel_err"].tolist()
    assert max(errors) <= 1e-6
    assert statistics.median(errors) <= 1e-7
