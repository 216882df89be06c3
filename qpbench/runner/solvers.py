"""Finding adapters for a run: registry names, plugins, selectors, and ``module:Class`` specs.

``module:Class`` (or ``module:factory``) imports an adapter that is not in the registry: a user
benchmarks a solver of their own without packaging it, and tests use it for misbehaving adapters.
The module may sit in the working directory (:mod:`qpbench.runner.specs`). Such a spec works in
worker processes too, since only the string crosses over.

Rows are labelled with the adapter's own ``name``, never with the spec, so two specs for one name
(or a user adapter named like a shipped one) are refused before the run.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass

from qpbench.adapters.base import Adapter
from qpbench.runner.specs import import_object
from qpbench.runner.suite import ALL_AVAILABLE, ALL_BATCHED

SELECTORS = (ALL_AVAILABLE, ALL_BATCHED)


@dataclass(frozen=True)
class SolverRef:
    """One solver of a run: the spec a worker resolves, and what the rows call it."""

    spec: str  # registry name (``osqp``, ``quadprog@2``, a plugin's name) or ``module:Class``
    name: str  # the adapter's ``name``: the results table's 'solver' column
    version: str  # the adapter's ``version()`` here, part of what makes a row already done


def resolve_adapter(spec: str) -> Adapter:
    """An adapter instance for a registry name (``osqp``, ``quadprog@2``, a plugin) or ``module:Class``."""
    if ":" in spec:
        return _import_adapter(spec)
    from qpbench.adapters.registry import get_adapter

    return get_adapter(spec)


def _import_adapter(spec: str) -> Adapter:
    adapter = import_object(spec, "solver")()
    if not isinstance(adapter, Adapter):
        raise ValueError(f"solver {spec!r} is not a qpbench Adapter (got {type(adapter).__name__})")
    if not isinstance(adapter.name, str) or not adapter.name:
        raise ValueError(f"solver {spec!r}: the adapter has no 'name' (set the class attribute name = \"...\")")
    return adapter


def expand_selectors(selectors: tuple[str, ...] | list[str]) -> list[str]:
    """Specs in order, selectors (all-available, all-batched) expanded to the adapters they mean."""
    specs: list[str] = []
    for item in selectors:
        if item in SELECTORS:
            from qpbench.adapters.registry import available_adapters

            found = [a.name for a in available_adapters() if item == ALL_AVAILABLE or a.capabilities.batched]
        else:
            found = [item]
        specs.extend(spec for spec in found if spec not in specs)
    return specs


def select_solvers(selectors: tuple[str, ...] | list[str], exclude: tuple[str, ...] | list[str] = ()) -> list[str]:
    """Specs to run, in order; specs matching a glob pattern of ``exclude`` are dropped.

    Patterns match registry names and specs as written; :func:`resolve_solvers` also matches
    them against the adapters' own names."""
    return [spec for spec in expand_selectors(selectors) if not _excluded(spec, exclude)]


def _excluded(name: str, patterns: tuple[str, ...] | list[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)


def resolve_solvers(
    selectors: tuple[str, ...] | list[str], exclude: tuple[str, ...] | list[str] = ()
) -> list[SolverRef]:
    """The run's solvers for one selection: each spec resolved once (ValueError naming a spec that
    no adapter answers to), excluded by spec or name, one adapter per name."""
    refs: dict[str, SolverRef] = {}
    for spec in select_solvers(selectors, exclude):
        adapter = resolve_adapter(spec)
        if _excluded(adapter.name, exclude):
            continue
        if ":" in spec:
            _refuse_shipped_name(spec, adapter.name)
        earlier = refs.get(adapter.name)
        if earlier is not None and earlier.spec != spec:
            raise ValueError(
                f"solvers {earlier.spec!r} and {spec!r} are both named {adapter.name!r}; the results table "
                "labels rows by the adapter's name, so each solver needs its own"
            )
        refs[adapter.name] = SolverRef(spec=spec, name=adapter.name, version=adapter.version())
    return list(refs.values())


def _refuse_shipped_name(spec: str, name: str) -> None:
    from qpbench.adapters.registry import adapter_names

    if name.partition("@")[0] in adapter_names():
        raise ValueError(
            f"solver {spec!r} is named {name!r}, like an adapter qpbench ships (or an installed plugin); "
            "give it a name of its own so its rows cannot be mistaken for that one's"
        )

