"""Convergence confirmed on the original data.

The iteration measures its residuals through the scaling (``measures``), which is exact in exact
arithmetic but not in floating point: at tight tolerances (1e-9 and below) the gap, a sum of
terms that cancel, can differ by more than the tolerance between the scaled computation and the
one a user makes on the original data. A problem is declared solved only when the second one,
in float64, agrees.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from qpbench.problem import QPBatch
from qpbench.solver.kkt import bmtv, bmv
from qpbench.solver.measures import Residuals, tolerance_ratios
from qpbench.solver.scaling import neutralize_absent_rows
from qpbench.solver.state import Iterate


@dataclass
class _Unscaled:
    """The original problem's vectors, with the factors of no scaling (``ProblemVectors``)."""

    p: Tensor
    h: Tensor
    b: Tensor
    D: Tensor = field(init=False)
    E: Tensor = field(init=False)
    F: Tensor = field(init=False)
    c: Tensor = field(init=False)

    def __post_init__(self) -> None:
        self.D, self.E, self.F = torch.ones_like(self.p), torch.ones_like(self.h), torch.ones_like(self.b)
        self.c = self.p.new_ones(self.p.shape[0])


def confirmed(
    batch: QPBatch, rows: Tensor, z: Tensor, lam: Tensor, nu: Tensor, eps_abs: float, eps_rel: float
) -> Tensor:
    """(r,) whether (z, lam, nu) in original units meet the tolerance on the original data of
    the problems ``rows`` of ``batch``, with the residuals of ``QPBatch.residuals`` in float64
    (the definition every measurement in qpbench uses)."""
    f64 = torch.float64
    data = {name: batch.expanded(name)[rows].to(f64) for name in ("Q", "p", "G", "h", "A", "b")}
    original = QPBatch(**data, check="none")
    z, lam, nu = z.to(f64), lam.to(f64), nu.to(f64)
    res = original.residuals(z, lam, nu)
    if not eps_rel:
        return (res["primal"] <= eps_abs) & (res["dual"] <= eps_abs) & (res["gap"] <= eps_abs)
    # The scales of a relative tolerance, on the original data (absent rows neutralized).
    G, h, _ = neutralize_absent_rows(data["G"], data["h"])
    P = _Unscaled(p=data["p"], h=h, b=data["b"])
    Qz, Gz, Az = bmv(data["Q"], z), bmv(G, z), bmv(data["A"], z)
    Cty = bmtv(G, lam) + bmtv(data["A"], nu)
    r = Residuals(r_d=Qz + P.p + Cty, r_in=Gz - h, r_eq=Az - P.b, Qz=Qz, Gz=Gz, Az=Az, Cty=Cty)
    return tolerance_ratios(
        res["primal"], res["dual"], res["gap"], P, Iterate.pack(z, lam, lam, nu), r, eps_abs, eps_rel
    ).converged
