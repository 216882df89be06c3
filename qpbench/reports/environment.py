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


def flatten(record: Mapping[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    for key, value in record.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            if value:
                pairs += flatten(value, name + ".")
            else:
                pairs.append((name, "(none)"))
        elif isinstance(value, list | tuple):
            pairs.append((name, ", ".join(str(v) for v in value) if value else "(none)"))
        else:
            pairs.append((name, "" if value is None else str(value)))
    return pairs


def _rank(name: str) -> tuple[int, str]:
    head = name.split(".", 1)[0]
    return (_FIRST.index(head) if head in _FIRST else len(_FIRST), "")


def environment_rows(record: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(key, value) rows: the usual keys first, the rest in the record's own order."""
    pairs = flatten(record)
    ordered = sorted(enumerate(pairs), key=lambda item: (_rank(item[1][0])[0], item[0]))
    rows = []
    for _, (key, value) in ordered:
        value = value if len(value) <= _MAX_VALUE else value[: _MAX_VALUE - 3] + "..."
        rows.append((key, value))
    return rows
