"""Which differentiable QP solver the OptNet models call.

Every model calls ``solve_qp(Q, p, G, h, A, b)`` and gets z (B, n), differentiable w.r.t. all six
tensors. ``"inhouse"`` is :class:`qpbench.layer.QPFunction`; ``"qpth"`` is the original OptNet
solver, kept for comparison. Gradients of a shared (unbatched) tensor are the SUM over the batch
in-house and the MEAN in qpth; the experiments train with Adam, which is insensitive to that
constant factor, so the two solvers train alike.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable

import torch
from torch import Tensor

SOLVERS = ("inhouse", "qpth")
QPCallable = Callable[[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor], Tensor]


def inhouse_available() -> bool:
    return importlib.util.find_spec("qpbench.layer") is not None


def resolve_solver(name: str) -> str:
    """``"auto"`` means the in-house layer when it exists in this checkout, else qpth."""
    if name == "auto":
        return "inhouse" if inhouse_available() else "qpth"
    if name not in SOLVERS:
        raise ValueError(f"solver must be 'auto' or one of {SOLVERS}, got {name!r}")
    return name


def make_qp_function(solver: str = "auto", max_iter: int | None = None, eps: float = 1e-8) -> QPCallable:
    """A function (Q, p, G, h, A, b) -> z backed by the chosen solver.

    ``eps`` is the stopping tolerance (in-house: absolute, with eps/10 relative); training does
    not need qpth's default 1e-12. ``max_iter`` None keeps each solver's own limit (in-house 100,
    here 30 for qpth, whose default of 20 stops some Sudoku batches early).
    Absent constraint blocks are (0, n) / (0,) tensors, as in :class:`qpbench.problem.QPBatch`.
    """
    solver = resolve_solver(solver)
    if solver == "inhouse":
        from qpbench.layer import QPFunction
        from qpbench.solver import SolverSettings

        settings = SolverSettings(eps_abs=eps, eps_rel=eps * 1e-1)
        if max_iter is not None:
            settings = settings.with_updates(max_iter=max_iter)

        def inhouse(Q: Tensor, p: Tensor, G: Tensor, h: Tensor, A: Tensor, b: Tensor) -> Tensor:
            return QPFunction.apply(Q, p, G, h, A, b, settings)

        return inhouse

    from qpth.qp import QPFunction as QpthFunction

    # check_Q_spd=False: the models build Q positive definite by construction, and qpth's check
    # costs a Cholesky of the whole batch on every call.
    fn = QpthFunction(eps=eps, verbose=-1, maxIter=max_iter or 30, check_Q_spd=False)

    def qpth(Q: Tensor, p: Tensor, G: Tensor, h: Tensor, A: Tensor, b: Tensor) -> Tensor:
        # qpth marks an absent block with a tensor that has no elements at all.
        if A.numel() == 0:
            A = b = torch.empty(0, dtype=Q.dtype, device=Q.device)
        if G.numel() == 0:
            G = h = torch.empty(0, dtype=Q.dtype, device=Q.device)
        return fn(Q, p, G, h, A, b)

    return qpth
