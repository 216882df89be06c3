"""The two iteration modes: compacting (CPU default) and fixed-shape (other devices; CUDA graphs)."""

from __future__ import annotations

import pytest
import torch

from qpbench.generators import generate
from qpbench.solver import driver, solve
from qpbench.solver.graphs import StateBuffers

FAMILIES = ["optnet_random", "random_eq", "lp", "box", "primal_infeasible", "dual_infeasible"]


@pytest.mark.parametrize("family", FAMILIES)
def test_fixed_shape_mode_gives_the_statuses_and_solutions_of_compacting(family: str) -> None:
    batch = generate(family, 12, 10, seed=2)
    compact, fixed = solve(batch, mode="compact"), solve(batch, mode="fixed")
    assert compact.info.mode == "compact" and fixed.info.mode == "fixed"
    assert compact.statuses() == fixed.statuses()
    solved = compact.solved
    assert torch.allclose(compact.z[solved], fixed.z[solved], atol=1e-7)


def test_auto_mode_compacts_on_the_cpu() -> None:
    assert solve(generate("optnet_random", 2, 5, seed=0)).info.mode == "compact"


class _EmulatedGraph:
    """A CUDA graph's semantics on the CPU: the step captured once (its iteration index fixed)
    and replayed on the same static buffers."""

    def __init__(self, ws, step, work) -> None:
        self.ws, self.step = ws, step
        self.buffers = StateBuffers(ws)
        step()
        self.buffers.absorb(ws)

    def replay(self) -> None:
        self.step()
        self.buffers.absorb(self.ws)


def test_replaying_on_static_buffers_matches_the_plain_fixed_mode(monkeypatch) -> None:
    # What runs on CUDA with graphs, minus the kernels' replay: the state rebinding between
    # replays and the confirmation at block ends.
    batch = generate("random_eq", 8, 10, seed=3)
    plain = solve(batch, mode="fixed")
    monkeypatch.setattr(driver, "GraphIteration", _EmulatedGraph)
    monkeypatch.setattr(driver, "choose_mode", lambda settings, device: driver.FixedShape(driver.GraphSteps))
    replayed = solve(batch, mode="fixed")
    assert replayed.statuses() == plain.statuses()
    assert torch.equal(replayed.z, plain.z) and torch.equal(replayed.iterations, plain.iterations)


def test_bad_mode_settings_raise() -> None:
    with pytest.raises(ValueError, match="mode must be one of"):
        solve(generate("box", 1, 4), mode="masked")
    with pytest.raises(ValueError, match="check_every must be >= 1"):
        solve(generate("box", 1, 4), check_every=0)
