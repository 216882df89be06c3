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
# Shown as tables of their own (solver versions, solver options), not as key/value rows.
DASK_WORKERS = "dask.workers"  # a Dask run's workers, one row each
_OWN_TABLES = (SUITE_GROUPS, "solver_options", "solver_versions", DASK_WORKERS)


def flatten(record: Mapping[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    for key, value in record.items():
        name = f"{prefix}{key}"
        if name in _OWN_TABLES:
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


def solver_option_rows(record: Mapping[str, Any], solvers: list[str]) -> list[tuple[str, str, str, str]]:
    """(solver, tolerance, time limit, options) from the record's ``solver_options``, in ``solvers``
    order (then any others the record names)."""
    options = record.get("solver_options")
    if not isinstance(options, Mapping):
        return []
    names = [s for s in solvers if s in options] + [s for s in options if s not in solvers]
    rows = []
    for name in names:
        for entry in options[name] if isinstance(options[name], list) else []:
            if not isinstance(entry, Mapping):
                continue
            if "error" in entry:
                rows.append((name, "", "", f"could not be read: {entry['error']}"))
                continue
            shown = ", ".join(f"{key}={_short_value(value)}" for key, value in dict(entry.get("options") or {}).items())
            rows.append((name, str(entry.get("tolerance", "")), _short_value(entry.get("time_limit")), shown or "none"))
    return rows


def _short_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return "" if value is None else str(value)


def dask_worker_rows(record: Mapping[str, Any]) -> list[tuple[str, ...]]:
    """(address, host, machine, threads, resources, thread variables) per Dask worker of the run."""
    dask = record.get("dask")
    workers = dask.get("workers") if isinstance(dask, Mapping) else None
    rows = []
    for worker in workers if isinstance(workers, list) else []:
        if not isinstance(worker, Mapping):
            continue
        resources = worker.get("resources") or {}
        variables = worker.get("thread_variables") or {}
        rows.append(
            (
                str(worker.get("address", "")),
                str(worker.get("host", "")),
                str(worker.get("machine", "")),
                _short_value(worker.get("nthreads")),
                ", ".join(f"{k}={v:g}" for k, v in resources.items()) or "none",
                ", ".join(f"{k}={'unset' if v is None else v}" for k, v in variables.items()) or "none",
            )
        )
    return rows
