"""The exact baseline: max f(x) over the box as a big-M mixed-integer LP.

Per hidden neuron with pre-activation a = w . h_prev + b and interval bounds L <= a <= U:
stable inactive (U <= 0) neurons are dropped, stable active ones (L >= 0) get h = a, and the
others get a binary d with  h >= a,  h <= a - L (1 - d),  h <= U d,  h >= 0. The tighter the
bounds, the tighter the relaxation; interval arithmetic is the simplest valid choice.

Solved by HiGHS (open source) or Gurobi (its size-limited licence allows 2000 variables and 2000
constraints; larger models are skipped with that reason). Either can be warm-started from a point
x (the best sampled one): the full MIP vector is completed by a forward pass.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor

from qpbench.relu.network import ReluNet, interval_bounds, interval_layer
from qpbench.relu.regions import check_box

GUROBI_SIZE_LIMIT = 2000
MIP_SOLVERS = ("highs", "gurobi")
BOUND_METHODS = ("interval", "lp")


@dataclass
class MipModel:
    """maximize cost . v + offset  s.t.  row_lo <= rows v <= row_hi,  col_lo <= v <= col_hi."""

    cost: np.ndarray
    offset: float
    col_lo: np.ndarray
    col_hi: np.ndarray
    integer: np.ndarray  # bool per column
    rows: sp.csr_matrix
    row_lo: np.ndarray
    row_hi: np.ndarray
    # How to fill the MIP vector from a point x: per layer, (columns of h, columns of d or -1).
    layout: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=list)
    n_input: int = 0

    @property
    def num_vars(self) -> int:
        return self.cost.shape[0]

    @property
    def num_constraints(self) -> int:
        return self.rows.shape[0]

    @property
    def num_binaries(self) -> int:
        return int(self.integer.sum())

    @property
    def size(self) -> dict[str, int]:
        """Variables, constraints and binaries, as recorded in a result's ``info``."""
        return {"vars": self.num_vars, "constraints": self.num_constraints, "binaries": self.num_binaries}

    def point_from_input(self, net: ReluNet, x: Tensor) -> np.ndarray:
        """The MIP vector (x, h, d) of an input point, by a forward pass."""
        _, pre = net.forward_with_preactivations(x.reshape(1, -1))
        v = np.zeros(self.num_vars)
        v[: self.n_input] = x.detach().cpu().numpy()
        for a, (kept, h_cols, d_cols) in zip(pre, self.layout, strict=True):
            a = a[0].detach().cpu().numpy()[kept]
            v[h_cols] = np.maximum(a, 0)
            has_d = d_cols >= 0
            v[d_cols[has_d]] = (a[has_d] >= 0).astype(float)
        return v


def build_mip(net: ReluNet, lo: Tensor, hi: Tensor,
              bounds: list[tuple[Tensor, Tensor]] | None = None) -> MipModel:
    """The big-M model; ``bounds`` per hidden layer default to interval arithmetic."""
    lo, hi = check_box(net, lo, hi)
    if bounds is None:
        bounds = interval_bounds(net, lo, hi)
    model, last_cols, last_index = _encode_hidden(net, lo, hi, bounds)
    model.cost[last_cols] = net.weights[-1].cpu().numpy()[0, last_index]
    model.offset = float(net.biases[-1][0])
    return model


def _encode_hidden(net: ReluNet, lo: Tensor, hi: Tensor, bounds: list[tuple[Tensor, Tensor]]
                   ) -> tuple[MipModel, np.ndarray, np.ndarray]:
    """Constraints of the hidden layers that ``bounds`` covers (all, or a prefix for bound
    tightening), zero cost; also the columns of the last encoded layer and their unit indices."""
    n0 = net.input_dim
    col_lo, col_hi, integer = list(lo.cpu().numpy()), list(hi.cpu().numpy()), [False] * n0
    entries: list[tuple[int, int, float]] = []
    row_lo: list[float] = []
    row_hi: list[float] = []
    layout = []

    def add_row(terms: list[tuple[int, float]], low: float, high: float) -> None:
        r = len(row_lo)
        entries.extend((r, c, v) for c, v in terms if v != 0.0)
        row_lo.append(low)
        row_hi.append(high)

    prev_cols = np.arange(n0)  # columns of the previous layer's live outputs
    prev_index = np.arange(n0)  # which units of the previous layer they are
    for (W, b), (L, U) in zip(zip(net.weights, net.biases, strict=False), bounds, strict=False):
        W = W.cpu().numpy()[:, prev_index]
        b, L, U = b.cpu().numpy(), L.cpu().numpy(), U.cpu().numpy()
        kept = np.nonzero(U > 0)[0]  # stable inactive neurons output 0: drop them
        h_cols = np.arange(len(col_lo), len(col_lo) + kept.size)
        col_lo.extend(np.maximum(L[kept], 0.0))
        col_hi.extend(U[kept])
        integer.extend([False] * kept.size)
        d_cols = np.full(kept.size, -1)
        for t, j in enumerate(kept):
            w_terms = [(int(c), -float(w)) for c, w in zip(prev_cols, W[j], strict=True)]
            h = int(h_cols[t])
            if L[j] >= 0:  # stable active: h = a
                add_row([(h, 1.0), *w_terms], float(b[j]), float(b[j]))
                continue
            d = len(col_lo)
            d_cols[t] = d
            col_lo.append(0.0)
            col_hi.append(1.0)
            integer.append(True)
            add_row([(h, 1.0), *w_terms], -np.inf, float(b[j]) - float(L[j]))
            entries.append((len(row_lo) - 1, d, -float(L[j])))  # h - a + L(1-d) <= 0
            add_row([(h, 1.0), *w_terms], float(b[j]), np.inf)  # h >= a
            add_row([(h, 1.0), (d, -float(U[j]))], -np.inf, 0.0)  # h <= U d
        layout.append((kept, h_cols, d_cols))
        prev_cols, prev_index = h_cols, kept
    cost = np.zeros(len(col_lo))
    if entries:
        r, c, v = (np.array(t) for t in zip(*entries, strict=True))
    else:
        r, c, v = np.zeros(0, int), np.zeros(0, int), np.zeros(0)
    rows = sp.csr_matrix((v, (r.astype(int), c.astype(int))), shape=(len(row_lo), len(col_lo)))
    model = MipModel(
        cost=cost,
        offset=0.0,
        col_lo=np.array(col_lo, dtype=float),
        col_hi=np.array(col_hi, dtype=float),
        integer=np.array(integer, dtype=bool),
        rows=rows,
        row_lo=np.array(row_lo, dtype=float),
        row_hi=np.array(row_hi, dtype=float),
        layout=layout,
        n_input=n0,
    )
    return model, prev_cols, prev_index


def lp_tightened_bounds(net: ReluNet, lo: Tensor, hi: Tensor,
                        time_limit: float | None = None) -> list[tuple[Tensor, Tensor]]:
    """Pre-activation bounds tightened layer by layer with the LP relaxation (OBBT).

    The first layer's interval bounds are exact. For each later layer, the big-M relaxation of the
    layers before it (with their already tightened bounds) is one HiGHS model; each unstable
    neuron's pre-activation is minimized and maximized over it by changing only the cost, so the
    simplex re-solves warm. Tighter bounds give a much tighter big-M formulation. Past
    ``time_limit`` seconds the remaining neurons keep their interval bounds (still valid).
    """
    import highspy

    start = time.perf_counter()
    lo, hi = check_box(net, lo, hi)
    bounds = [interval_layer(net.weights[0], net.biases[0], lo, hi)]
    for layer in range(1, len(net.hidden_sizes)):
        L_prev, U_prev = bounds[-1]
        W, b = net.weights[layer], net.biases[layer]
        L, U = interval_layer(W, b, L_prev.clamp_min(0), U_prev.clamp_min(0))
        model, cols, index = _encode_hidden(net, lo, hi, bounds)
        unstable = torch.nonzero((L < 0) & (U > 0)).flatten().tolist()
        if unstable and cols.size:
            solver = _highs_from_model(model, relax=True)
            W_live = W.cpu().numpy()[:, index]
            all_cols = np.arange(model.num_vars, dtype=np.int32)
            for j in unstable:
                if time_limit is not None and time.perf_counter() - start > time_limit:
                    break
                cost = np.zeros(model.num_vars)
                cost[cols] = W_live[j]
                solver.changeColsCost(model.num_vars, all_cols, cost)
                values = []
                for sense in (highspy.ObjSense.kMinimize, highspy.ObjSense.kMaximize):
                    solver.changeObjectiveSense(sense)
                    solver.run()
                    ok = str(solver.getModelStatus()).endswith("kOptimal")
                    values.append(solver.getInfo().objective_function_value + float(b[j]) if ok else None)
                if values[0] is not None:
                    L[j] = max(float(L[j]), values[0])
                if values[1] is not None:
                    U[j] = min(float(U[j]), values[1])
        elif not cols.size:  # every neuron before is dead: the layer outputs its bias
            L, U = b.clone(), b.clone()
        bounds.append((L, U))
    return bounds


def _highs_from_model(model: MipModel, relax: bool = False) -> Any:
    """A silent HiGHS instance holding ``model`` (its LP relaxation when ``relax``)."""
    import highspy

    inf = highspy.kHighsInf
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    lp = highspy.HighsLp()
    lp.num_col_, lp.num_row_ = model.num_vars, model.num_constraints
    lp.col_cost_ = model.cost
    lp.offset_ = model.offset
    lp.sense_ = highspy.ObjSense.kMaximize
    lp.col_lower_, lp.col_upper_ = model.col_lo, model.col_hi
    lp.row_lower_ = np.where(np.isfinite(model.row_lo), model.row_lo, -inf)
    lp.row_upper_ = np.where(np.isfinite(model.row_hi), model.row_hi, inf)
    lp.a_matrix_.format_ = highspy.MatrixFormat.kRowwise
    lp.a_matrix_.num_col_, lp.a_matrix_.num_row_ = model.num_vars, model.num_constraints
    lp.a_matrix_.start_, lp.a_matrix_.index_ = model.rows.indptr, model.rows.indices
    lp.a_matrix_.value_ = model.rows.data
    if not relax:
        lp.integrality_ = [highspy.HighsVarType.kInteger if i else highspy.HighsVarType.kContinuous
                           for i in model.integer]
    h.passModel(lp)
    return h


@dataclass
class MipResult:
    solver: str
    status: str  # 'optimal', 'time_limit', 'skipped', 'unavailable', or the solver's word
    best_x: Tensor | None
    best_value: float  # forward-pass f at best_x (-inf when none)
    objective: float  # the solver's incumbent objective
    bound: float  # the solver's upper bound on max f
    seconds: float
    trace: list[tuple[float, float]] = field(default_factory=list)
    reason: str = ""
    warm_start: bool = False
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def proven_optimal(self) -> bool:
        return self.status == "optimal"


def _finish(net: ReluNet, model: MipModel, solver: str, status: str, v: np.ndarray | None,
            objective: float, bound: float, seconds: float, trace: list[tuple[float, float]],
            warm: bool) -> MipResult:
    if v is None:
        return MipResult(solver, status, None, float("-inf"), objective, bound, seconds, trace,
                         warm_start=warm)
    x = torch.as_tensor(v[: model.n_input], dtype=net.dtype, device=net.device)
    value = float(net.forward(x.reshape(1, -1))[0])
    return MipResult(solver, status, x, value, objective, bound, seconds, trace, warm_start=warm, info=model.size)


def _solve_highs(net: ReluNet, model: MipModel, time_limit: float, start: np.ndarray | None,
                 threads: int) -> MipResult:
    import highspy

    h = _highs_from_model(model)
    h.setOptionValue("time_limit", float(time_limit))
    h.setOptionValue("threads", int(threads))
    trace: list[tuple[float, float]] = []
    t0 = time.perf_counter()

    def improving(event: Any) -> None:
        trace.append((time.perf_counter() - t0, float(event.data_out.objective_function_value)))

    h.cbMipImprovingSolution.subscribe(improving)
    if start is not None:
        sol = highspy.HighsSolution()
        sol.col_value = list(start)
        sol.value_valid = True
        h.setSolution(sol)
    h.run()
    seconds = time.perf_counter() - t0
    status = str(h.getModelStatus()).rsplit(".", 1)[-1]
    word = {"kOptimal": "optimal", "kTimeLimit": "time_limit"}.get(status, status)
    info = h.getInfo()
    has_point = info.primal_solution_status >= 1 and np.isfinite(info.objective_function_value)
    v = np.asarray(h.getSolution().col_value) if has_point else None
    bound = float(info.mip_dual_bound) if np.isfinite(info.mip_dual_bound) else float("inf")
    return _finish(net, model, "highs", word, v, float(info.objective_function_value), bound, seconds,
                   trace, start is not None)


def _solve_gurobi(net: ReluNet, model: MipModel, time_limit: float, start: np.ndarray | None,
                  threads: int) -> MipResult:
    import gurobipy as gp
    from gurobipy import GRB

    env = gp.Env(empty=True)
    env.setParam("OutputFlag", 0)
    env.start()
    m = gp.Model(env=env)
    m.Params.TimeLimit = float(time_limit)
    m.Params.Threads = int(threads)
    vtype = np.where(model.integer, GRB.BINARY, GRB.CONTINUOUS)
    v = m.addMVar(model.num_vars, lb=model.col_lo, ub=model.col_hi, vtype=vtype)
    finite_hi, finite_lo = np.isfinite(model.row_hi), np.isfinite(model.row_lo)
    equal = finite_hi & finite_lo & (model.row_lo == model.row_hi)
    for mask, sense, rhs in ((equal, "=", model.row_hi), (finite_hi & ~equal, "<", model.row_hi),
                             (finite_lo & ~equal, ">", model.row_lo)):
        if mask.any():
            m.addMConstr(model.rows[mask], v, sense, rhs[mask])
    m.setObjective(model.cost @ v + model.offset, GRB.MAXIMIZE)
    if start is not None:
        v.Start = start
    trace: list[tuple[float, float]] = []

    def callback(cb_model: Any, where: int) -> None:
        if where == GRB.Callback.MIPSOL:
            trace.append((cb_model.cbGet(GRB.Callback.RUNTIME), cb_model.cbGet(GRB.Callback.MIPSOL_OBJ)))

    t0 = time.perf_counter()
    m.optimize(callback)
    seconds = time.perf_counter() - t0
    word = {GRB.OPTIMAL: "optimal", GRB.TIME_LIMIT: "time_limit"}.get(m.Status, f"status_{m.Status}")
    point = np.asarray(v.X) if m.SolCount > 0 else None
    objective = float(m.ObjVal) if m.SolCount > 0 else float("-inf")
    bound = float(m.ObjBound)
    result = _finish(net, model, "gurobi", word, point, objective, bound, seconds, trace, start is not None)
    m.dispose()
    env.dispose()
    return result


def solver_available(solver: str) -> tuple[bool, str]:
    """(available, reason if not) for a MIP solver name."""
    if solver not in MIP_SOLVERS:
        raise ValueError(f"solver must be one of {MIP_SOLVERS}, got {solver!r}")
    module = "highspy" if solver == "highs" else "gurobipy"
    try:
        __import__(module)
    except ImportError:
        return False, f"{module} is not installed"
    return True, ""


def solve_mip(
    net: ReluNet,
    lo: Tensor,
    hi: Tensor,
    solver: str = "highs",
    time_limit: float = 60.0,
    warm_start: Tensor | None = None,
    threads: int = 1,
    bounds: str = "interval",
    model: MipModel | None = None,
) -> MipResult:
    """Maximize f over the box exactly (up to the time limit); ``warm_start`` is an input point.

    ``bounds``: 'interval' (interval arithmetic) or 'lp' (LP-tightened, see
    :func:`lp_tightened_bounds`; its time is included in ``seconds`` and in ``info``). A prebuilt
    ``model`` skips the bound computation.
    """
    if time_limit <= 0:
        raise ValueError(f"time_limit must be positive, got {time_limit}")
    if bounds not in BOUND_METHODS:
        raise ValueError(f"bounds must be one of {BOUND_METHODS}, got {bounds!r}")
    available, why = solver_available(solver)
    bound_seconds = 0.0
    if model is None:
        t0 = time.perf_counter()
        # Tightening may use at most half the time limit; the MIP gets the full limit after it.
        layer_bounds = (lp_tightened_bounds(net, lo, hi, time_limit / 2)
                        if bounds == "lp" and available else None)
        model = build_mip(net, lo, hi, layer_bounds)
        bound_seconds = time.perf_counter() - t0
    size = model.size
    if not available:
        return MipResult(solver, "unavailable", None, float("-inf"), float("nan"), float("nan"), 0.0,
                         reason=why, warm_start=warm_start is not None, info={**size, "bounds": bounds})
    if solver == "gurobi" and max(model.num_vars, model.num_constraints) > GUROBI_SIZE_LIMIT:
        reason = (f"model has {model.num_vars} variables and {model.num_constraints} constraints; "
                  f"the restricted Gurobi licence allows {GUROBI_SIZE_LIMIT}")
        return MipResult(solver, "skipped", None, float("-inf"), float("nan"), float("nan"), bound_seconds,
                         reason=reason, warm_start=warm_start is not None,
                         info={**size, "bounds": bounds, "bound_seconds": bound_seconds})
    start = None
    if warm_start is not None:
        lo_, hi_ = check_box(net, lo, hi)
        if warm_start.shape != (net.input_dim,):
            raise ValueError(f"warm_start must have shape ({net.input_dim},), got {tuple(warm_start.shape)}")
        start = model.point_from_input(net, torch.minimum(torch.maximum(warm_start, lo_), hi_))
    run = _solve_highs if solver == "highs" else _solve_gurobi
    result = run(net, model, time_limit, start, threads)
    result.seconds += bound_seconds
    result.trace = [(t + bound_seconds, v) for t, v in result.trace]
    result.info.update(bounds=bounds, bound_seconds=bound_seconds)
    return result
