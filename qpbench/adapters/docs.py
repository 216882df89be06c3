"""The adapter tables of docs/solvers.md, generated from the adapters themselves so they cannot drift.

Everything here comes from code that is the same on every machine (capabilities, ``options`` at
each tolerance level, the documentation attributes of :class:`~qpbench.adapters.base.Adapter`);
nothing depends on which packages are installed, so the committed page can be checked against
the code in any environment (tests/test_solver_options.py).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from qpbench.adapters._common import UNLIMITED
from qpbench.adapters.base import Adapter, Tolerance

_PROBE_TIME_LIMIT = 10.0  # any finite limit: the options that appear only with one are the time-limit option


def adapter_tables(adapters: Sequence[Adapter]) -> str:
    """Markdown: a capabilities table, an options table (low / mid / high) and the reasons."""
    parts = [
        "### Capabilities",
        "",
        _table(
            ("adapter", "package", "batched", "differentiable", "devices", "dtypes", "takes", "multipliers", "status"),
            [_capability_cells(a) for a in adapters],
        ),
        "",
        "### Options per tolerance level",
        "",
        "The solver's own options that each level maps to (`Adapter.options`), without a time limit; the last "
        "column is the option the runner's time limit goes to.",
        "",
        _table(
            ("adapter", *(f"{t.value} ({t.eps:g})" for t in Tolerance), "time limit"),
            [_option_cells(a) for a in adapters],
        ),
        "",
        "### Why these options",
        "",
        *(f"* `{a.name}`: {a.options_note}" for a in adapters if a.options_note),
    ]
    return "\n".join(parts) + "\n"


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(" --- " for _ in headers) + "|"]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def takes(adapter: Adapter) -> str:
    """What an adapter accepts, in words, from its capabilities (and its ``takes_note``)."""
    caps = adapter.capabilities
    limits = []
    if caps.needs_pd_q:
        limits.append("positive definite Q")
    elif not caps.lp:
        limits.append("no LPs (Q = 0)")
    if not caps.equalities:
        limits.append("no equalities")
    if caps.needs_inequalities:
        limits.append("m ≥ 1")
    if caps.needs_constraints:
        limits.append("m + k ≥ 1")
    if adapter.takes_note:
        limits.append(adapter.takes_note)
    return "; ".join(limits) or "all"


def _capability_cells(adapter: Adapter) -> tuple[str, ...]:
    caps = adapter.capabilities
    return (
        f"`{adapter.name}`",
        adapter.package,
        _yes(caps.batched),
        _yes(caps.differentiable) + (f" ({adapter.gradient_convention})" if caps.differentiable else ""),
        ", ".join(caps.devices),
        ", ".join(str(d).replace("torch.", "") for d in caps.dtypes),
        takes(adapter),
        "returned" if adapter.returns_multipliers else "recovered at z",
        adapter.status_source,
    )


def format_options(options: dict[str, Any]) -> str:
    """``key = value`` pairs in the adapter's order; numbers in short form."""
    return ", ".join(f"`{key} = {_value(value)}`" for key, value in options.items()) or "none"


def _value(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, float) and math.isfinite(value) and value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return f"{value:g}"


def _option_cells(adapter: Adapter) -> tuple[str, ...]:
    levels = [format_options(adapter.options(level, UNLIMITED)) for level in Tolerance]
    unlimited = adapter.options(Tolerance.MID, UNLIMITED)
    limited = adapter.options(Tolerance.MID, _PROBE_TIME_LIMIT)
    keys = [f"`{key}`" for key in limited if key not in unlimited]
    return (f"`{adapter.name}`", *levels, ", ".join(keys) or "none")
