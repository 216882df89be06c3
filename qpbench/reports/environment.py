"""The machine-and-versions table, from the run's environment record.

The record's exact keys belong to the runner, so this module does not depend on them: it shows
the keys a reader looks for first (machine, then versions, then the run) and every other key after
them, with nested mappings flattened to dotted names.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# Keys (or dotted prefixes) shown first, in this order, when the record has them.
_FIRST = (
    "cpu", "cpu_model", "cpu_cores", "cores", "cpu_count", "gpu", "gpus", "cuda", "torch_threads",
    "threads", "python", "os", "platform", "torch", "versions", "libraries", "solvers",
    "solver_versions", "git_commit", "git", "commit", "date", "timestamp", "suite", "run_id",
)  # fmt: skip
_MAX_VALUE = 300  # a long value (an env dump, a traceback) would wreck the table


SUITE_GROUPS = "suite.groups"  # shown as its own table (one row per case group), not one long cell


def flatten(record: Mapping[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    for key, value in record.items():
        name = f"{prefix}{key}"
        if name == SUITE_GROUPS:
            continue
        if isinstance(value, Mapping):
            if value:
                pairs += flatten(value, name + ".")
            else:
                pairs.append((name, "(none)"))
        elif isinstance(value, list | tuple):
            pairs.append((name, _cell(value) or "(none)"))
        else:
            pairs.append((name, "(none)" if value is None else str(value)))
    return pairs


def _cell(value: Any) -> str:
    """Lists as "a, b"; nested lists (sizes) as "(10, 10, 0)"."""
    if isinstance(value, list | tuple):
        return ", ".join(f"({_cell(v)})" if isinstance(v, list | tuple) else _cell(v) for v in value)
    return "" if value is None else str(value)


def _rank(name: str) -> int:
    head = name.split(".", 1)[0]
    return _FIRST.index(head) if head in _FIRST else len(_FIRST)


def suite_groups(record: Mapping[str, Any]) -> tuple[list[str], list[tuple[str, ...]]]:
    """The suite's case groups as (headers, rows); keys that are empty in every group are left out."""
    suite = record.get("suite")
    groups = suite.get("groups") if isinstance(suite, Mapping) else None
    if not isinstance(groups, list):
        return [], []
    groups = [g for g in groups if isinstance(g, Mapping)]
    keys = list(dict.fromkeys(key for g in groups for key in g))
    keys = [key for key in keys if any(g.get(key) not in (None, [], "") for g in groups)]
    return keys, [tuple(_cell(g.get(key)) for key in keys) for g in groups]


def environment_rows(record: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(key, value) rows: the usual keys first, the rest in the record's own order."""
    pairs = flatten(record)
    ordered = sorted(enumerate(pairs), key=lambda item: (_rank(item[1][0]), item[0]))
    rows = []
    for _, (key, value) in ordered:
        value = value if len(value) <= _MAX_VALUE else value[: _MAX_VALUE - 3] + "..."
        rows.append((key, value))
    return rows
