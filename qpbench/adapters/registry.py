"""Adapters by name: ``get_adapter("osqp")``, ``get_adapter("quadprog@4")`` (4 worker processes).

The runner and the ``qpbench solvers`` command use only this module.
"""

from __future__ import annotations

from collections.abc import Callable

from qpbench.adapters.base import Adapter


def _factories() -> dict[str, Callable[[], Adapter]]:
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


def adapter_names() -> list[str]:
    """Every adapter name this suite knows (available or not); ``name@N`` adds worker processes."""
    return list(_factories())


def get_adapter(name: str) -> Adapter:
    """A fresh adapter for ``name`` or ``name@workers`` (a per-problem solver on that many processes)."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"name must be a non-empty string, got {name!r}")
    base_name, sep, workers_text = name.partition("@")
    factories = _factories()
    if base_name not in factories:
        raise ValueError(f"name: unknown solver {base_name!r}; known: {', '.join(factories)}")
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
