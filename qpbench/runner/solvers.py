"""Finding adapters by name: the registry's names, selectors, and ``module:Class`` specs.

``module:Class`` (or ``module:factory``) imports an adapter that is not in the registry: tests use
it for misbehaving adapters, and a user can benchmark a solver of their own without editing
qpbench. Such a spec works in worker processes too, since only the string crosses over.
"""

from __future__ import annotations

import fnmatch
import importlib

from qpbench.adapters.base import Adapter
from qpbench.runner.suite import ALL_AVAILABLE, ALL_BATCHED


def resolve_adapter(spec: str) -> Adapter:
    """An adapter instance for a registry name (``osqp``, ``quadprog@2``) or ``module:Class``."""
    if ":" in spec:
        module_name, _, attr = spec.partition(":")
        try:
            factory = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as exc:
            raise ValueError(f"solver {spec!r} cannot be imported: {exc}") from None
        adapter = factory()
        if not isinstance(adapter, Adapter):
            raise ValueError(f"solver {spec!r} is not a qpbench Adapter (got {type(adapter).__name__})")
        return adapter
    from qpbench.adapters.registry import get_adapter

    return get_adapter(spec)


def select_solvers(selectors: tuple[str, ...] | list[str], exclude: tuple[str, ...] | list[str] = ()) -> list[str]:
    """Names to run, in order: selectors expand to the available (batched) adapters' names;
    names matching a glob pattern of ``exclude`` are dropped."""
    names: list[str] = []
    for item in selectors:
        if item in (ALL_AVAILABLE, ALL_BATCHED):
            from qpbench.adapters.registry import available_adapters

            found = [a.name for a in available_adapters() if item == ALL_AVAILABLE or a.capabilities.batched]
        else:
            found = [item]
        names.extend(name for name in found if name not in names)
    return [name for name in names if not any(fnmatch.fnmatchcase(name, pat) for pat in exclude)]


def check_solver_names(names: list[str]) -> None:
    """Raise ValueError (naming the solver) for a name no adapter answers to, before any work."""
    for name in names:
        resolve_adapter(name)
