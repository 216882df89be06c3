"""Resuming: which rows are already done, and refusing rows that were measured differently.

A row is done when its key (case_id, solver, tolerance) is in the table **and** it was measured
the way this run would measure it. Rather than measure such a key again beside the old row (two
rows for one key, which every reader would have to choose between) or drop the old row (losing a
measurement), a run whose settings differ from the table's refuses to start, names each
difference, and points to ``--fresh``. So one results directory is always one consistent
measurement: every row taken with the same threads and code, and each solver at one version.

The machine is not one of these settings: a run may span several machines (``--executor dask``),
each row names the machine that measured it (``machine``), and reports and comparisons keep each
machine's rows apart. So a row measured on another machine counts as done, and a run interrupted
on a cluster resumes here (or the other way round) without measuring it again.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

KEY_COLUMNS = ("case_id", "solver", "tolerance")
# Settings of the whole run: every row of the table must share them.
RUN_SETTINGS = ("torch_threads", "qpbench_version", "qpbench_commit")
# Settings of one (case, solver, tolerance): the row this run would skip must have them.
ROW_SETTINGS = ("repeats", "warmups", "time_limit")
# Settings of a solver: every row of a solver this run measures must have its current version.
SOLVER_SETTINGS = ("solver_version",)

Key = tuple[Any, ...]


def row_key(row: Mapping[str, Any]) -> Key:
    return tuple(row.get(column) for column in KEY_COLUMNS)


@dataclass(frozen=True)
class Difference:
    """One setting whose value in some rows of the table differs from this run's."""

    setting: str
    table_value: Any
    run_value: Any
    rows: int
    run_ids: tuple[str, ...]

    def describe(self) -> str:
        runs = ", ".join(self.run_ids[:3]) + (f" and {len(self.run_ids) - 3} more" if len(self.run_ids) > 3 else "")
        return (
            f"{self.setting}: {_shown(self.table_value)} in {self.rows} row(s) of the table (run {runs}), "
            f"{_shown(self.run_value)} in this run"
        )


def _shown(value: Any) -> str:
    return "not recorded (an older qpbench wrote the row)" if value is None else repr(value)


class ResumeConflictError(ValueError):
    """The results directory holds rows measured differently from this run."""

    def __init__(self, out: Path, differences: list[Difference]) -> None:
        self.differences = differences
        lines = "\n".join(f"  {d.describe()}" for d in differences)
        super().__init__(
            f"{out} holds rows measured differently from this run, so they cannot count as done:\n{lines}\n"
            f"Run with --fresh to discard the rows in {out} and measure everything again, "
            "or write this run elsewhere with --out."
        )


def check_resume(
    out: Path,
    rows: Iterable[Mapping[str, Any]],
    planned: Mapping[Key, Mapping[str, Any]],
    run_settings: Mapping[str, Any],
    solver_versions: Mapping[str, str],
) -> set[Key]:
    """The keys already done; raises ResumeConflictError when a row was measured differently.

    ``planned`` maps each key this run would measure to its row settings (repeats, warm-ups,
    time limit); ``run_settings`` holds this run's RUN_SETTINGS (other entries are ignored);
    ``solver_versions`` the version of every solver this run measures."""
    found: dict[tuple[str, Any, Any], list[str]] = {}
    done: set[Key] = set()
    shared = {setting: run_settings[setting] for setting in RUN_SETTINGS if setting in run_settings}
    for row in rows:
        key = row_key(row)
        done.add(key)
        expected = dict(shared)
        if key in planned:
            expected.update(planned[key])
        if row.get("solver") in solver_versions:
            expected["solver_version"] = solver_versions[row["solver"]]
        for setting, value in expected.items():
            if row.get(setting) != value:
                found.setdefault((setting, _hashable(row.get(setting)), value), []).append(str(row.get("run_id")))
    if found:
        differences = [
            Difference(setting, table_value, run_value, len(ids), tuple(dict.fromkeys(ids)))
            for (setting, table_value, run_value), ids in found.items()
        ]
        raise ResumeConflictError(out, differences)
    return done


def _hashable(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value
