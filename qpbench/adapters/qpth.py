"""qpth's batched primal-dual interior-point method (OptNet), CPU or CUDA, differentiable.

Read from qpth 0.0.18 (qpth/qp.py, qpth/solvers/pdipm/batch.py):

* ``QPFunction.forward`` runs ``pdipm_b.pre_factor_kkt`` then ``pdipm_b.forward``; ``solve`` below
  calls the same two functions directly because only they return the multipliers (QPFunction
  returns z alone). qpth's ``y`` multiplies A and ``z`` multiplies G with
  Qx + p + A'y + G'z = 0 and z >= 0, which is QPBatch's (nu, lam) convention.
* It reports no status. It stops when its residual (2-norm primal + 2-norm dual + m * mu) is below
  ``eps``, or after ``notImprovedLim`` iterations without improvement, or at ``maxIter``; the
  status here is SOLVED when that residual is below eps, else MAX_ITER (NUMERICAL_ERROR if not
  finite).
* ``backward`` averages the gradient of a shared (unbatched) tensor over the batch
  (``dQs.mean(0)`` etc.), so ``gradient_convention`` is "mean"; the suite's convention is "sum".
* It needs Q positive definite (``pre_factor_kkt`` takes an LU of Q; QPFunction checks a Cholesky)
  and at least one inequality row (``mu`` divides by m).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from qpbench.adapters._common import UNLIMITED, check_supported, derived_status
from qpbench.adapters.base import Adapter, Capabilities, SolveOutput, Tolerance
from qpbench.problem import NAMES, QPBatch


@dataclass
class _Prepared:
    batch: QPBatch
    options: dict[str, Any]


class QpthAdapter(Adapter):
    name = "qpth"
    package = "qpth"
    capabilities = Capabilities(
        batched=True,
        differentiable=True,
        devices=("cpu", "cuda"),
        dtypes=(torch.float32, torch.float64),
        needs_pd_q=True,
        needs_inequalities=True,
        lp=False,
    )
    gradient_convention = "mean"
    status_source = "derived: its own stopping residual ≤ eps"
    options_note = (
        "qpth's `eps` bounds the sum of its 2-norm primal and dual residuals and m·mu, so meeting it "
        "meets the suite's infinity-norm tests; `maxIter` is raised from 20 to 100 so that high can be "
        "reached on small problems. No time limit."
    )

    def options(self, tolerance: Tolerance, time_limit: float) -> dict[str, Any]:
        # qpth has no time limit. Its eps bounds a sum of residual norms; maxIter is raised from
        # the default 20 so tight tolerances can be reached on small problems.
        return {"eps": tolerance.eps, "maxIter": 100, "notImprovedLim": 3}

    def setup(self, batch: QPBatch, tolerance: Tolerance | str, time_limit: float = UNLIMITED) -> _Prepared:
        check_supported(self, batch)
        return _Prepared(batch, self.options(Tolerance.parse(tolerance), time_limit))

    def solve(self, prepared: _Prepared) -> SolveOutput:
        from qpth.solvers.pdipm import batch as pdipm_b

        bt, opts = prepared.batch, prepared.options
        Q, p, G, h, A, b = (bt.expanded(name) for name in NAMES)
        with torch.no_grad():
            Q_LU, S_LU, R = pdipm_b.pre_factor_kkt(Q, G, A)
            x, y, lam, s = pdipm_b.forward(
                Q, p, G, h, A, b, Q_LU, S_LU, R,
                opts["eps"], -1, opts["notImprovedLim"], opts["maxIter"],
            )
        nu = y if bt.k else torch.zeros(bt.batch_size, 0, dtype=x.dtype, device=x.device)
        resid = _qpth_residual(Q, p, G, h, A, b, x, lam, nu, s)
        status = derived_status(resid.isfinite().cpu().numpy(), (resid <= opts["eps"]).cpu().numpy())
        return SolveOutput(
            z=x.double(), status=status, lam=lam.double(), nu=nu.double(),
            info={"qpth_residual": resid.double()},
        )

    def differentiable_solve(self, batch: QPBatch, tolerance: Tolerance | str) -> Tensor:
        from qpth.qp import QPFunction, QPSolvers

        check_supported(self, batch)
        opts = self.options(Tolerance.parse(tolerance), UNLIMITED)
        fn = QPFunction(
            eps=opts["eps"], verbose=-1, notImprovedLim=opts["notImprovedLim"], maxIter=opts["maxIter"],
            solver=QPSolvers.PDIPM_BATCHED,
        )
        return fn(batch.Q, batch.p, batch.G, batch.h, batch.A, batch.b)


def _qpth_residual(
    Q: Tensor, p: Tensor, G: Tensor, h: Tensor, A: Tensor, b: Tensor,
    x: Tensor, lam: Tensor, nu: Tensor, s: Tensor,
) -> Tensor:
    """qpth's own stopping residual: |primal|_2 + |dual|_2 + m * mu, per problem."""

    def mv(M: Tensor, v: Tensor) -> Tensor:
        return torch.bmm(M, v.unsqueeze(-1)).squeeze(-1)

    def mtv(M: Tensor, v: Tensor) -> Tensor:
        return torch.bmm(M.transpose(1, 2), v.unsqueeze(-1)).squeeze(-1)

    dual = mv(Q, x) + p + mtv(G, lam) + (mtv(A, nu) if A.shape[1] else 0.0)
    primal = (mv(G, x) + s - h).norm(dim=-1)
    if A.shape[1]:
        primal = primal + (mv(A, x) - b).norm(dim=-1)
    mu = (s * lam).sum(-1).abs() / G.shape[1]
    return primal + dual.norm(dim=-1) + G.shape[1] * mu
