"""The compiled fixed-shape mode (``compile=True``): the same answers and gradients as the eager
fixed-shape mode, compiled once per shape, and settings it refuses."""

from __future__ import annotations

import pytest
import torch
from torch._dynamo.utils import counters

from qpbench.generators import generate
from qpbench.layer import QPFunction
from qpbench.problem import QPBatch
from qpbench.solver import SolverSettings, solve
from qpbench.solver.compiled import compiler_missing
from qpbench.status import Status

# TorchInductor's own deprecation warning while it compiles; nothing of this project's.
pytestmark = [
    pytest.mark.filterwarnings("ignore:`torch._prims_common.check` is deprecated:FutureWarning"),
    pytest.mark.skipif(compiler_missing("cpu") is not None, reason=str(compiler_missing("cpu"))),
]


@pytest.fixture(scope="module")
def batch() -> QPBatch:
    """Feasible problems and a primal infeasible one, of one shape."""
    return QPBatch.concat([generate("optnet_random", 3, 6, seed=4), generate("primal_infeasible", 1, 6, seed=6)])


@pytest.mark.parametrize("kkt_form", ["dual", "reduced"])
def test_compiled_solves_match_the_eager_fixed_shape_mode(batch: QPBatch, kkt_form: str) -> None:
    eager = solve(batch, mode="fixed", kkt_form=kkt_form)
    assert eager.info.kkt_form == kkt_form
    assert eager.statuses()[-1] == Status.PRIMAL_INFEASIBLE and eager.solved[:3].all()
    for _ in range(3):  # eager counting, then compiling, then the compiled code reused
        compiled = solve(batch, compile=True, kkt_form=kkt_form)
        assert compiled.info.mode == "fixed"
        assert compiled.statuses() == eager.statuses()
        assert torch.equal(compiled.iterations, eager.iterations)
        assert compiled.work == eager.work
        assert torch.allclose(compiled.z[:3], eager.z[:3], atol=1e-9, rtol=0)


def test_a_compiled_shape_is_not_compiled_again(batch: QPBatch) -> None:
    for _ in range(2):
        solve(batch, compile=True, kkt_form="dual")
    graphs = counters["stats"]["unique_graphs"]
    solve(batch, compile=True, kkt_form="dual")
    assert counters["stats"]["unique_graphs"] == graphs
    # Other settings are compiled anew, and a check every third iteration (the default off the
    # CPU) stops the compiled loop where the eager mode stops.
    eager = solve(batch, mode="fixed", kkt_form="dual", check_every=3)
    for _ in range(2):
        compiled = solve(batch, compile=True, kkt_form="dual", check_every=3)
        assert compiled.statuses() == eager.statuses()
        assert torch.equal(compiled.iterations, eager.iterations)
        assert compiled.info.iterations_loop == eager.info.iterations_loop
        assert compiled.work == eager.work
    assert counters["stats"]["unique_graphs"] > graphs


def test_gradients_through_a_compiled_solve_are_the_eager_ones(batch: QPBatch) -> None:
    # The layer differentiates at the solution (eagerly), so compiling the forward solve must not
    # change a gradient. The feasible problems only: the infeasible one gets a zero gradient.
    feasible = batch[:3]
    grads = {}
    for compiled in (False, True, True, True):  # eager; counted, compiled, reused
        data = [t.clone().requires_grad_(True) for t in (feasible.Q, feasible.p, feasible.G, feasible.h)]
        settings = SolverSettings(compile=compiled, mode="fixed", kkt_form="dual")
        QPFunction.apply(*data, None, None, settings).square().sum().backward()
        grads[compiled] = [t.grad for t in data]
    for eager, compiled in zip(grads[False], grads[True], strict=True):
        assert torch.allclose(compiled, eager, atol=1e-10, rtol=0)


def test_a_missing_compiler_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from qpbench.solver import compiled

    monkeypatch.setattr(compiled, "compiler_missing", lambda device_type: "no C++ compiler (test)")
    with pytest.raises(RuntimeError, match="compile=True cannot run on cpu: no C\\+\\+ compiler"):
        solve(generate("box", 1, 4), compile=True)


def test_compile_needs_the_fixed_shape_mode() -> None:
    with pytest.raises(ValueError, match="compile=True needs mode 'fixed' or 'auto'"):
        solve(generate("box", 1, 4), compile=True, mode="compact")
