"""Reading rows out of a results table: keys, the last row of each key, numbers that may be missing."""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import pandas as pd

# A row is identified by these columns in both tables (case_id already encodes most of them;
# they are repeated so that a case_id scheme that omits one still keys correctly).
KEY_COLUMNS: tuple[str, ...] = ("case_id", "solver", "batch_size", "dtype", "device", "tolerance")

Row = dict[str, Any]
Rows = dict[tuple, Row]


class Finding(NamedTuple):
    """One reason the check fails: a case (or "all timed cases"), a metric, the two values, why."""

    case: str
    metric: str
    baseline: Any
    current: Any
    message: str


def check_keys(table: pd.DataFrame, label: str) -> None:
    missing = [c for c in KEY_COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"{label} table lacks key columns {missing}")


def latest_rows(table: pd.DataFrame, label: str, notes: list[str]) -> Rows:
    """One row per key; a key written twice (a resumed or repeated run) keeps its last row."""
    check_keys(table, label)
    rows: Rows = {}
    duplicates = 0
    for record in table.to_dict("records"):
        key = tuple(_key_part(record.get(c)) for c in KEY_COLUMNS)
        duplicates += key in rows
        rows[key] = record
    if duplicates:
        notes.append(f"{label}: {duplicates} duplicate row(s); the last of each was used")
    return rows


def _key_part(value: Any) -> Any:
    if missing(value):
        return ""
    if isinstance(value, float) and value.is_integer():
        return int(value)  # a batch size read back as 64.0 still matches 64
    return value


def sort_key(key: tuple) -> tuple:
    return tuple(str(part) for part in key)


def label(key: tuple) -> str:
    case_id, solver, batch, dtype, device, tol = key
    return f"{case_id} [{solver} B={batch} {dtype} {device} tol={tol}]"


def missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):  # lists (solve_times) are not missing
        return False


def num(row: Row, column: str) -> float:
    """The column as a float; NaN when absent or not a number."""
    value = row.get(column)
    if missing(value):
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def is_ok(row: Row) -> bool:
    return str(row.get("outcome")) == "ok"


def times(row: Row) -> list[float]:
    """Every repeat's solve time, in the order measured (empty when not recorded)."""
    value = row.get("solve_times")
    if value is None or isinstance(value, (str, float)):
        return []
    try:
        return [float(t) for t in value]
    except (TypeError, ValueError):
        return []
