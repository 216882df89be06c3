"""The benchmark runner: suites (``problems/*.toml``) expanded to cases, run with fault isolation.

Public API::

    suite = load_suite("default")                 # or a path to a .toml file
    suite = apply_overrides(suite, {"batch_sizes": [1, 64]})
    summary = run_suite(suite, RunOptions(out_dir=Path("results/default")))

See ``docs/suite-format.md`` for the suite format and ``docs/architecture.md`` for the isolation
design. Names are imported on
first use so that a worker process importing ``qpbench.runner.worker`` does not pay for pandas.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Case": "cases",
    "apply_overrides": "cases",
    "build_batch": "cases",
    "expand": "cases",
    "RunPlan": "check",
    "plan_run": "check",
    "RunOptions": "execute",
    "RunSummary": "execute",
    "run_suite": "execute",
    "ResumeConflictError": "resume",
    "SolverRef": "solvers",
    "resolve_adapter": "solvers",
    "resolve_solvers": "solvers",
    "select_solvers": "solvers",
    "Suite": "suite",
    "load_suite": "suite",
    "suite_names": "suite",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'qpbench.runner' has no attribute {name!r}")
    return getattr(importlib.import_module(f"qpbench.runner.{_EXPORTS[name]}"), name)
