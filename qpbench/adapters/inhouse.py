"""The in-house batched PDIPM (``qpbench.solver``): CPU and CUDA, float32 and float64, batched.

Differentiable through ``qpbench.layer.QPFunction`` (gradients of shared tensors are summed over
the batch). A solve reports the solver's load-independent work counts (iterations,
factorizations, solves, data passes) as ``info["work"]``; the runner records them as the
``work_*`` columns and the regression gate compares them exactly (``docs/regression.md``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor

from qpbench.adapters._common import UNLIMITED, check_supported
from qpbench.adapters.base import Adapter, Capabilities, SolveOutput, Tolerance
from qpbench.problem import QPBatch


@dataclass
class _Prepared:
    batch: QPBatch
    settings: Any  # qpbench.solver.SolverSettings


class InHouseAdapter(Adapter):
    name = "inhouse"
    package = "qpbench"
    capabilities = Capabilities(
        batched=True,
        differentiable=True,
        devices=("cpu", "cuda"),
        dtypes=(torch.float32, torch.float64),
    )
    gradient_convention = "sum"

    def _import(self) -> Any:
        from qpbench.solver import SolverSettings, solve

        return solve, SolverSettings

    def options(self, tolerance: Tolerance, time_limit: float) -> dict[str, Any]:
        # Absolute tolerance only, like the suite's success check. The solver has no time limit;
        # its max_iter (default 200) bounds the work instead.
        return {"eps_abs": tolerance.eps, "eps_rel": 0.0}

    def setup(self, batch: QPBatch, tolerance: Tolerance | str, time_limit: float = UNLIMITED) -> _Prepared:
        from qpbench.solver import SolverSettings

        check_supported(self, batch)
        settings = SolverSettings(**self.options(Tolerance.parse(tolerance), time_limit))
        return _Prepared(batch, settings)

    def solve(self, prepared: _Prepared) -> SolveOutput:
        from qpbench.solver import solve

        sol = solve(prepared.batch, prepared.settings)
        return SolveOutput(
            z=sol.z.double(),
            status=sol.status.to("cpu", torch.int64).numpy(),
            lam=sol.lam.double(),
            nu=sol.nu.double(),
            iterations=sol.iterations.to("cpu", torch.int64).numpy(),
            info={"kkt_form": sol.info.kkt_form, "mode": sol.info.mode, "work": asdict(sol.work)},
        )

    def differentiable_solve(self, batch: QPBatch, tolerance: Tolerance | str) -> Tensor:
        from qpbench.layer import QPFunction
        from qpbench.solver import SolverSettings

        check_supported(self, batch)
        settings = SolverSettings(**self.options(Tolerance.parse(tolerance), UNLIMITED))
        return QPFunction.apply(batch.Q, batch.p, batch.G, batch.h, batch.A, batch.b, settings)
