"""Adapters by name: ``get_adapter("osqp")``, ``get_adapter("quadprog@4")`` (4 worker processes).

Two sources of names: the adapters shipped with qpbench, and adapters that other installed
packages declare in the entry-point group ``qpbench.adapters`` (name = the adapter's ``name``,
value = ``"package.module:Class"``; see ``docs/adding-a-solver.md``). A shipped name wins over a
plugin of the same name. A plugin that fails to load is listed as unavailable, with the reason,
rather than breaking the listing. The runner and the ``qpbench solvers`` command use only this
module.
"""

from __future__ import annotations

import difflib
import warnings
from collections.abc import Callable
from functools import partial
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from qpbench.adapters.base import Adapter, SolveOutput, Tolerance
from qpbench.problem import QPBatch

ENTRY_POINT_GROUP = "qpbench.adapters"


def _builtin_factories() -> dict[str, Callable[[], Adapter]]:
    # Imports are local so that listing names costs nothing; solver packages load lazily anyway.
    from qpbench.adapters.clarabel import ClarabelAdapter
    from qpbench.adapters.cvxpy_backends import cvxpy_adapters
    from qpbench.adapters.cvxpylayers import CvxpyLayersAdapter
    from qpbench.adapters.daqp import DAQPAdapter
    from qpbench.adapters.gurobi import GurobiAdapter
    from qpbench.adapters.highs import HiGHSAdapter
    from qpbench.adapters.inhouse import InHouseAdapter
    from qpbench.adapters.osqp import OSQPAdapter
    from qpbench.adapters.piqp import PIQPAdapter
    from qpbench.adapters.proxqp import ProxQPAdapter
    from qpbench.adapters.proxqp_layer import ProxQPLayerAdapter
    from qpbench.adapters.qpth import QpthAdapter
    from qpbench.adapters.quadprog import QuadprogAdapter
    from qpbench.adapters.scs import SCSAdapter

    classes: list[type[Adapter]] = [
        InHouseAdapter, QpthAdapter, CvxpyLayersAdapter, ProxQPLayerAdapter, ProxQPAdapter,
        OSQPAdapter, ClarabelAdapter, QuadprogAdapter, PIQPAdapter, DAQPAdapter, HiGHSAdapter,
        GurobiAdapter, SCSAdapter,
    ]
    factories: dict[str, Callable[[], Adapter]] = {cls.name: cls for cls in classes}
    for adapter in cvxpy_adapters():  # built afresh on every call, so each lookup gets its own
        factories[adapter.name] = lambda adapter=adapter: adapter
    return factories


def plugin_entry_points() -> list[EntryPoint]:
    """The entry points of the ``qpbench.adapters`` group, one per distinct name (first wins)."""
    found: dict[str, EntryPoint] = {}
    for point in entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(point.name, point)
    return list(found.values())


def _factories() -> dict[str, Callable[[], Adapter]]:
    factories = _builtin_factories()
    for point in plugin_entry_points():
        if point.name in factories:
            warnings.warn(
                f"entry point {point.name} = {point.value} (group {ENTRY_POINT_GROUP}) is ignored: "
                f"{point.name!r} is a shipped adapter",
                stacklevel=3,
            )
            continue
        factories[point.name] = partial(load_plugin, point)
    return factories


def load_plugin(point: EntryPoint) -> Adapter:
    """The adapter an entry point names, or an unavailable stand-in that says why it cannot load."""
    where = f"entry point {point.name} = {point.value} (group {ENTRY_POINT_GROUP})"
    try:
        adapter = point.load()()
    except Exception as exc:
        return UnloadablePlugin(point.name, f"{where} cannot be loaded: {type(exc).__name__}: {exc}")
    if not isinstance(adapter, Adapter):
        return UnloadablePlugin(point.name, f"{where} is not a qpbench Adapter (got {type(adapter).__name__})")
    if adapter.name != point.name:
        return UnloadablePlugin(
            point.name, f"{where} makes an adapter named {adapter.name!r}; the entry point's name must be the same"
        )
    return adapter


class UnloadablePlugin(Adapter):
    """Stands in for a plugin adapter that failed to load: listed, never run."""

    def __init__(self, name: str, reason: str) -> None:
        self.name = name
        self.reason = reason

    def availability(self) -> tuple[bool, str]:
        return False, self.reason

    def setup(self, batch: QPBatch, tolerance: Tolerance, time_limit: float) -> Any:
        raise RuntimeError(self.reason)

    def solve(self, prepared: Any) -> SolveOutput:
        raise RuntimeError(self.reason)

    def options(self, tolerance: Tolerance, time_limit: float) -> dict[str, Any]:
        return {}


def adapter_names() -> list[str]:
    """Every adapter name this suite knows (available or not); ``name@N`` adds worker processes."""
    return list(_factories())


def unknown_name_message(name: str, known: list[str]) -> str:
    """'unknown solver ...' with the closest known names first."""
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
    hint = f"; closest: {', '.join(close)}" if close else ""
    return f"unknown solver {name!r}{hint} (known: {', '.join(known)}; see `qpbench solvers`)"


def get_adapter(name: str) -> Adapter:
    """A fresh adapter for ``name`` or ``name@workers`` (a per-problem solver on that many processes)."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"name must be a non-empty string, got {name!r}")
    base_name, sep, workers_text = name.partition("@")
    factories = _factories()
    if base_name not in factories:
        raise ValueError(f"name: {unknown_name_message(base_name, list(factories))}")
    adapter = factories[base_name]()
    if not sep:
        return adapter
    if not workers_text.isdigit() or int(workers_text) < 1:
        raise ValueError(f"name: workers in {name!r} must be a positive integer (e.g. {base_name}@4)")
    from qpbench.adapters.parallel import WorkersAdapter

    return WorkersAdapter(adapter, int(workers_text))


def all_adapters() -> list[Adapter]:
    """One instance of every known adapter (without worker variants)."""
    return [make() for make in _factories().values()]


def available_adapters() -> list[Adapter]:
    """The adapters whose package (and licence) is present."""
    return [adapter for adapter in all_adapters() if adapter.available]
