"""The benchmark runner: suites (``problems/*.toml``) expanded to cases, run with fault isolation.

Public API::

    suite = load_suite("default")                 # or a path to a .toml file
    suite = apply_overrides(suite, {"batch_sizes": [1, 64]})
    summary = run_suite(suite, RunOptions(out_dir=Path("results/default")))

See ``problems/README.md`` for the suite format and the isolation design.
"""

from qpbench.runner.cases import Case, apply_overrides, build_batch, expand
from qpbench.runner.execute import RunOptions, RunSummary, run_suite
from qpbench.runner.solvers import resolve_adapter, select_solvers
from qpbench.runner.suite import Suite, load_suite, suite_names

__all__ = [
    "Case",
    "RunOptions",
    "RunSummary",
    "Suite",
    "apply_overrides",
    "build_batch",
    "expand",
    "load_suite",
    "resolve_adapter",
    "run_suite",
    "select_solvers",
    "suite_names",
]
