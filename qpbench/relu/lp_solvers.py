"""Solve a batch of region LPs: the in-house batched solver, or HiGHS one problem at a time.

Both return the same :class:`LPBatchResult` so the sampling algorithms and the throughput
comparison treat them alike. HiGHS is the reference: a sparse simplex/IPM code that solves one LP
per call, which is how a MIP-free pipeline would use it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from qpbench.adapters._common import split_problems
from qpbench.adapters.highs import _STATUS as _HIGHS_STATUS
from qpbench.problem import QPBatch
from qpbench.status import Status
from qpbench.timing import timed_call

BACKENDS = ("inhouse", "highs")


@dataclass
class LPBatchResult:
    z: Tensor  # (P, n) on the batch's device
    status: Tensor  # (P,) int64 Status codes
    seconds: float  # wall time of the solve (device synchronized)
    backend: str
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def solved(self) -> Tensor:
        return self.status == int(Status.SOLVED)


def inhouse_available() -> bool:
    """True once ``qpbench.solver`` exports ``solve`` (the lead's solver has landed)."""
    try:
        from qpbench.solver import solve  # noqa: F401
    except ImportError:
        return False
    return True


def highs_available() -> bool:
    try:
        import highspy  # noqa: F401
    except ImportError:
        return False
    return True


def solve_inhouse(batch: QPBatch, **settings: Any) -> LPBatchResult:
    if not inhouse_available():
        raise ValueError("backend 'inhouse' is not available: qpbench.solver does not export solve yet")
    from qpbench.solver import solve

    sol, seconds = timed_call(lambda: solve(batch, **settings), batch.device)
    return LPBatchResult(
        z=sol.z,
        status=sol.status.to(torch.int64),
        seconds=seconds,
        backend="inhouse",
        info={"iterations": sol.iterations},
    )


def highs_status(model_status: object) -> Status:
    return _HIGHS_STATUS.get(str(model_status).rsplit(".", 1)[-1], Status.UNKNOWN)


def _highs_model(
    Q: np.ndarray, p: np.ndarray, G: np.ndarray, h: np.ndarray, A: np.ndarray, b: np.ndarray
) -> Any:
    """One QP as a HiGHS model: rows [G; A] with bounds (-inf, h] and [b, b], free columns."""
    import highspy
    import scipy.sparse as sp

    n = p.shape[0]
    rows = sp.csr_matrix(np.vstack([G, A]))
    lp = highspy.HighsLp()
    lp.num_col_ = n
    lp.num_row_ = rows.shape[0]
    lp.col_cost_ = p
    lp.col_lower_ = np.full(n, -highspy.kHighsInf)
    lp.col_upper_ = np.full(n, highspy.kHighsInf)
    lp.row_lower_ = np.concatenate([np.full(G.shape[0], -highspy.kHighsInf), b])
    lp.row_upper_ = np.concatenate([h, b])
    lp.a_matrix_.format_ = highspy.MatrixFormat.kRowwise
    lp.a_matrix_.num_col_ = n
    lp.a_matrix_.num_row_ = rows.shape[0]
    lp.a_matrix_.start_ = rows.indptr
    lp.a_matrix_.index_ = rows.indices
    lp.a_matrix_.value_ = rows.data
    model = highspy.HighsModel()
    model.lp_ = lp
    if np.any(Q):
        # HiGHS takes the lower triangle column-wise, objective 1/2 x'Qx.
        lower = sp.csc_matrix(np.tril(Q))
        hess = highspy.HighsHessian()
        hess.dim_ = n
        hess.format_ = highspy.HessianFormat.kTriangular
        hess.start_ = lower.indptr
        hess.index_ = lower.indices
        hess.value_ = lower.data
        model.hessian_ = hess
    return model


def solve_highs(batch: QPBatch, time_limit: float | None = None) -> LPBatchResult:
    """Solve each problem of the batch with HiGHS, one after another.

    ``seconds`` counts passing each model to HiGHS and solving it; converting the dense tensors
    to HiGHS models beforehand is setup, reported as ``info['setup_seconds']`` (setup and solve
    are timed apart: docs/architecture.md, "Measurement rules")."""
    if not highs_available():
        raise ValueError("backend 'highs' is not available: highspy is not installed")
    import highspy

    problems = split_problems(batch)
    P, n = batch.batch_size, batch.n
    z = np.zeros((P, n))
    status = np.full(P, int(Status.UNKNOWN), dtype=np.int64)
    solver = highspy.Highs()
    solver.setOptionValue("output_flag", False)
    if time_limit is not None:
        solver.setOptionValue("time_limit", float(time_limit))
    setup_start = time.perf_counter()
    models = [_highs_model(d.Q, d.p, d.G, d.h, d.A, d.b) for d in problems]
    start = time.perf_counter()
    for i, model in enumerate(models):
        solver.passModel(model)
        solver.run()
        st = highs_status(solver.getModelStatus())
        status[i] = int(st)
        if st == Status.SOLVED:
            z[i] = np.asarray(solver.getSolution().col_value)
    seconds = time.perf_counter() - start
    return LPBatchResult(
        z=torch.as_tensor(z, dtype=batch.dtype).to(batch.device),
        status=torch.as_tensor(status).to(batch.device),
        seconds=seconds,
        backend="highs",
        info={"setup_seconds": start - setup_start},
    )


def solve_lps(batch: QPBatch, backend: str = "inhouse", **options: Any) -> LPBatchResult:
    """Dispatch by name; ``options`` go to the in-house solver's settings or HiGHS' time limit."""
    if backend == "inhouse":
        return solve_inhouse(batch, **options)
    if backend == "highs":
        return solve_highs(batch, **options)
    raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")


def default_backend() -> str:
    """The in-house solver once it exists, HiGHS until then."""
    return "inhouse" if inhouse_available() else "highs"
