"""The in-house solver on the real Maros–Mészáros problems (those with n <= 300, for speed).

The full-set figure (all 58 problems, mid accuracy) is measured by the ``maros_meszaros`` suite and
quoted in problems/maros_meszaros.md; this test guards it from regressing: a floor on the share
that meets qpbenchmark's mid accuracy (all three residuals <= 1e-6, absolute), and, for every
problem reported solved, agreement with the published optimum.
"""

from __future__ import annotations

import pytest
import torch

from qpbench.loaders.maros_meszaros import list_problems, load
from qpbench.solver import solve
from qpbench.status import Status

MID = 1e-6
MAX_N = 300
# Measured 2026-11-21: 30 of the 32 problems with n <= 300 meet mid accuracy. The floor leaves
# room for one or two problems that sit right at the tolerance, no more.
MIN_SHARE = 0.85


@pytest.fixture(scope="module")
def outcomes(maros_meszaros_dir) -> dict[str, tuple[bool, Status, float]]:
    torch.set_num_threads(1)
    out = {}
    for name in list_problems(maros_meszaros_dir, max_n=MAX_N):
        batch = load(name, data_dir=maros_meszaros_dir)
        sol = solve(batch, eps_abs=MID, eps_rel=0.0)
        res = batch.residuals(sol.z, sol.lam, sol.nu)
        status = sol.statuses()[0]
        meets = status is Status.SOLVED and all(float(v[0]) <= MID for v in res.values())
        obj = float(batch.objective(sol.z)[0]) + batch.meta["objective_offset"]
        ref = batch.meta["reference_objective"]
        out[name] = (meets, status, abs(obj - ref) / max(1.0, abs(ref)))
    return out


def test_mid_accuracy_share_does_not_regress(outcomes) -> None:
    meets = [name for name, (ok, _, _) in outcomes.items() if ok]
    failed = {name: status.label for name, (ok, status, _) in outcomes.items() if not ok}
    share = len(meets) / len(outcomes)
    assert share >= MIN_SHARE, f"{len(meets)}/{len(outcomes)} meet mid accuracy; failures: {failed}"


def test_solved_problems_match_the_published_optimum(outcomes) -> None:
    # OPTCOSTS.json holds 8 significant digits, and a few published values disagree with modern
    # solvers at ~1e-6 relative (data README), hence 1e-5.
    wrong = {name: err for name, (_, status, err) in outcomes.items() if status is Status.SOLVED and err > 1e-5}
    assert not wrong, f"solved but objective off the published optimum: {wrong}"


def test_never_a_false_infeasibility_verdict(outcomes) -> None:
    # Every problem of the set is feasible and bounded.
    bad = {name: s.label for name, (_, s, _) in outcomes.items()
           if s in (Status.PRIMAL_INFEASIBLE, Status.DUAL_INFEASIBLE)}
    assert not bad, bad
