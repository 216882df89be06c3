"""Suite files: ``problems/<name>.toml``, parsed and validated into a :class:`Suite`.

The format is documented in ``docs/suite-format.md``. In short: top-level keys give defaults
(``description``, ``solvers``, ``exclude_solvers``, ``tolerances``, ``dtypes``, ``devices``,
``batch_sizes``, ``seeds``, ``repeats``, ``warmups``, ``time_limit``, ``reference``, ``threads``);
each ``[[cases]]`` table is one group of cases, a generator ``family`` or a ``test_set`` with its
sizes, and may override any default except ``description`` and ``threads``. Every error names the
file, the group and the key at fault.

This module checks what the file itself says (keys, types, ranges). What needs the installation
(families and the sizes they accept, solver names, test-set problems) is checked by
:mod:`qpbench.runner.check` before a run starts.
"""

from __future__ import annotations

import difflib
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# The checkout beside the package (an editable install); see suites_dir() for the full order.
PROBLEMS_DIR = Path(__file__).resolve().parents[2] / "problems"
SUITES_DIR_VARIABLE = "QPBENCH_SUITES_DIR"


def suites_dir() -> Path:
    """Where suite names are looked up: $QPBENCH_SUITES_DIR, else ./problems in the working
    directory (a checkout, tox), else the checkout beside the package (editable install).

    A wheel install has no ``problems/`` folder of its own, hence the working-directory step.
    """
    env = os.environ.get(SUITES_DIR_VARIABLE)
    if env:
        return Path(env)
    for folder in (Path.cwd() / "problems", PROBLEMS_DIR):
        if any(folder.glob("*.toml")):
            return folder
    return PROBLEMS_DIR

TOLERANCES = ("low", "mid", "high")
DTYPES = ("float32", "float64")
DEVICES = ("cpu", "cuda")
TEST_SETS = ("maros_meszaros",)
# Solver selectors besides adapter names.
ALL_AVAILABLE = "all-available"
ALL_BATCHED = "all-batched"

# key -> default; these may appear at the top level and in each [[cases]] group.
SETTINGS: dict[str, Any] = {
    "solvers": [ALL_AVAILABLE],
    "exclude_solvers": [],  # glob patterns removed from what 'solvers' selects, e.g. "cvxpy_*"
    "tolerances": ["mid"],
    "dtypes": ["float64"],
    "devices": ["cpu"],
    "batch_sizes": [1],
    "seeds": [0],
    "repeats": 3,
    "warmups": 1,
    "time_limit": 10.0,
    "reference": True,
}
TOP_ONLY = ("description", "threads")
# One torch thread unless a suite says otherwise: the CPU solvers compared are single-threaded, and
# on a shared machine OpenMP threads waiting for each other make small solves slow and noisy.
DEFAULT_THREADS = 1
# The longest time limit: the runner waits for a worker with a timeout in milliseconds that must fit
# a C int (about 24.8 days), and an in-process alarm must fit a time_t; inf or 1e7 s crashed the run.
MAX_TIME_LIMIT = 1e6
GROUP_ONLY = ("family", "test_set", "n", "m", "k", "sizes", "problems", "max_n", "max_rows")


@dataclass(frozen=True)
class CaseGroup:
    """One ``[[cases]]`` table with the suite's defaults filled in."""

    family: str | None
    test_set: str | None
    sizes: tuple[tuple[int, int | None, int | None], ...]  # (n, m, k); None = family default
    problems: tuple[str, ...] | None  # test-set problem names; None = all
    max_n: int | None
    max_rows: int | None
    solvers: tuple[str, ...]
    exclude_solvers: tuple[str, ...]
    tolerances: tuple[str, ...]
    dtypes: tuple[str, ...]
    devices: tuple[str, ...]
    batch_sizes: tuple[int, ...]
    seeds: tuple[int, ...]
    repeats: int
    warmups: int
    time_limit: float
    reference: bool
    # Where each setting came from, for error messages (not part of the suite's record).
    source: str = field(default="", compare=False)  # "suite mysuite.toml"
    label: str = field(default="", compare=False)  # "cases[1]"
    given: frozenset[str] = field(default=frozenset(), compare=False)  # keys set in this table
    overridden: frozenset[str] = field(default=frozenset(), compare=False)  # keys the command line set

    def origin(self, key: str) -> str:
        """Where this group's ``key`` was set: the command line, the group's table, or the top level."""
        if key in self.overridden:
            return f"command line ({key!r})"
        if key in self.given:
            return f"{self.source}: {self.label}: {key!r}"
        return f"{self.source}: {key!r} (top level, used by {self.label})"


BOOKKEEPING = ("source", "label", "given", "overridden")


@dataclass(frozen=True)
class Suite:
    name: str
    description: str
    path: Path
    groups: tuple[CaseGroup, ...]
    threads: int  # torch threads pinned for the run; 0 = torch's default

    def to_record(self) -> dict[str, Any]:
        """A JSON-friendly description for environment.json."""
        return {
            "name": self.name,
            "description": self.description,
            "path": str(self.path),
            "threads": self.threads,
            "groups": [_group_record(group) for group in self.groups],
        }


def _group_record(group: CaseGroup) -> dict[str, Any]:
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(group).items() if k not in BOOKKEEPING}


def suite_path(name_or_path: str | Path) -> Path:
    """A suite name in ``problems/`` or a path to a TOML file."""
    text = str(name_or_path)
    if text.endswith(".toml") or "/" in text or "\\" in text:
        path = Path(text)
        if not path.is_file():
            raise FileNotFoundError(f"suite file {path} does not exist")
        return path
    folder = suites_dir()
    path = folder / f"{text}.toml"
    if not path.is_file():
        known = ", ".join(suite_names()) or "none"
        raise ValueError(
            f"unknown suite {text!r} in {folder}; known suites: {known} (or give a path to a .toml file, "
            f"run from a qpbench checkout, or set {SUITES_DIR_VARIABLE})"
        )
    return path


def suite_names() -> list[str]:
    return sorted(p.stem for p in suites_dir().glob("*.toml"))


def load_suite(name_or_path: str | Path) -> Suite:
    path = suite_path(name_or_path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:  # TOML files are UTF-8 by definition
        raise ValueError(f"suite {path}: not valid TOML: {exc}") from None
    return parse_suite(data, name=path.stem, path=path)


def parse_suite(data: dict[str, Any], name: str, path: Path | None = None) -> Suite:
    """Validate a parsed TOML document; errors name the suite and the key."""
    where = str(path or name)
    allowed = set(SETTINGS) | set(TOP_ONLY) | {"cases"}
    _reject_unknown(data, allowed, f"suite {where}")
    defaults = {key: _check_setting(key, data.get(key, value), f"suite {where}") for key, value in SETTINGS.items()}
    description = data.get("description", "")
    if not isinstance(description, str):
        raise ValueError(f"suite {where}: 'description' must be a string")
    threads = data.get("threads", DEFAULT_THREADS)
    if not _is_int(threads, 0):
        raise ValueError(f"suite {where}: 'threads' must be an integer >= 0 (0 = torch's default), got {threads!r}")
    groups_data = data.get("cases")
    if not isinstance(groups_data, list) or not groups_data:
        raise ValueError(f"suite {where}: 'cases' needs at least one [[cases]] table")
    source = f"suite {where}"
    groups = tuple(_parse_group(group, defaults, source, f"cases[{i}]") for i, group in enumerate(groups_data))
    return Suite(name=name, description=description, path=Path(path or name), groups=groups, threads=threads)


def _reject_unknown(table: dict[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        close = difflib.get_close_matches(unknown[0], sorted(allowed), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"{where}: unknown key {unknown[0]!r}{hint} (known keys: {', '.join(sorted(allowed))})")


def _is_int(value: Any, low: int) -> bool:
    """An int (not a bool) >= ``low``."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= low


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _check_setting(key: str, value: Any, where: str) -> Any:
    """Validate one setting and return it normalised (lists as tuples)."""
    if key == "reference":
        if not isinstance(value, bool):
            raise ValueError(f"{where}: 'reference' must be true or false, got {value!r}")
        return value
    if key in ("repeats", "warmups"):
        low = 1 if key == "repeats" else 0
        if not _is_int(value, low):
            raise ValueError(f"{where}: {key!r} must be an integer >= {low}, got {value!r}")
        return value
    if key == "time_limit":
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= MAX_TIME_LIMIT:
            raise ValueError(
                f"{where}: 'time_limit' must be a number of seconds > 0 and <= {MAX_TIME_LIMIT:g}, got {value!r}"
            )
        return float(value)
    items = _as_list(value)
    if not items and key != "exclude_solvers":
        raise ValueError(f"{where}: {key!r} must not be empty")
    if key in ("batch_sizes", "seeds"):
        low = 1 if key == "batch_sizes" else 0
        for item in items:
            if not _is_int(item, low):
                raise ValueError(f"{where}: {key!r} entries must be integers >= {low}, got {item!r}")
        return tuple(items)
    choices = {"tolerances": TOLERANCES, "dtypes": DTYPES, "devices": DEVICES}.get(key)
    for item in items:
        if not isinstance(item, str) or not item:
            raise ValueError(f"{where}: {key!r} entries must be non-empty strings, got {item!r}")
        if choices and item not in choices:
            raise ValueError(f"{where}: {key!r} entry {item!r} is not one of {', '.join(choices)}")
    return tuple(items)


def _size_list(group: dict[str, Any], key: str, where: str, optional: bool) -> list[int | None]:
    if key not in group:
        if optional:
            return [None]
        raise ValueError(f"{where}: needs {key!r} (or 'sizes')")
    items = _as_list(group[key])
    low = 1 if key == "n" else 0
    for item in items:
        if not _is_int(item, low):
            raise ValueError(f"{where}: {key!r} entries must be integers >= {low}, got {item!r}")
    if not items:
        raise ValueError(f"{where}: {key!r} must not be empty")
    return items


def _parse_sizes(group: dict[str, Any], where: str) -> tuple[tuple[int, int | None, int | None], ...]:
    if "sizes" in group:
        if any(key in group for key in ("n", "m", "k")):
            raise ValueError(f"{where}: give either 'sizes' or 'n'/'m'/'k', not both")
        sizes = group["sizes"]
        if not isinstance(sizes, list) or not sizes:
            raise ValueError(f"{where}: 'sizes' must be a non-empty list of [n, m, k] triples")
        out = []
        for item in sizes:
            ok = (
                isinstance(item, list)
                and len(item) == 3
                and all(isinstance(v, int) and not isinstance(v, bool) for v in item)
                and item[0] >= 1
                and item[1] >= 0
                and item[2] >= 0
            )
            if not ok:
                raise ValueError(f"{where}: 'sizes' entries must be [n, m, k] with n >= 1, m, k >= 0; got {item!r}")
            out.append((item[0], item[1], item[2]))
        return tuple(out)
    ns = _size_list(group, "n", where, optional=False)
    ms = _size_list(group, "m", where, optional=True)
    ks = _size_list(group, "k", where, optional=True)
    return tuple((n, m, k) for n in ns for m in ms for k in ks)  # type: ignore[misc]


def _parse_group(group: Any, defaults: dict[str, Any], source: str, label: str) -> CaseGroup:
    where = f"{source}: {label}"
    if not isinstance(group, dict):
        raise ValueError(f"{where}: must be a table")
    _reject_unknown(group, set(SETTINGS) | set(GROUP_ONLY), where)
    settings = {key: _check_setting(key, group[key], where) if key in group else defaults[key] for key in SETTINGS}
    family, test_set = group.get("family"), group.get("test_set")
    if (family is None) == (test_set is None):
        raise ValueError(f"{where}: give exactly one of 'family' or 'test_set'")
    problems: tuple[str, ...] | None = None
    max_n = _optional_int(group, "max_n", where)
    max_rows = _optional_int(group, "max_rows", where)
    if family is not None:
        if not isinstance(family, str) or not family:
            raise ValueError(f"{where}: 'family' must be a non-empty string")
        for key in ("problems", "max_n", "max_rows"):
            if key in group:
                raise ValueError(f"{where}: {key!r} applies to a test_set, not to a family")
        sizes = _parse_sizes(group, where)
    else:
        if test_set not in TEST_SETS:
            raise ValueError(f"{where}: 'test_set' must be one of {', '.join(TEST_SETS)}, got {test_set!r}")
        for key in ("n", "m", "k", "sizes"):
            if key in group:
                raise ValueError(f"{where}: {key!r} applies to a family; a test set's sizes come from its files")
        raw = group.get("problems", "all")
        if raw != "all":
            items = _as_list(raw)
            if not items or not all(isinstance(p, str) and p for p in items):
                raise ValueError(f"{where}: 'problems' must be \"all\" or a list of problem names")
            problems = tuple(items)
        sizes = ()
    return CaseGroup(
        family=family,
        test_set=test_set,
        sizes=sizes,
        problems=problems,
        max_n=max_n,
        max_rows=max_rows,
        **settings,
        source=source,
        label=label,
        given=frozenset(group),
    )


def _optional_int(group: dict[str, Any], key: str, where: str) -> int | None:
    value = group.get(key)
    if value is None:
        return None
    if not _is_int(value, 1):
        raise ValueError(f"{where}: {key!r} must be an integer >= 1, got {value!r}")
    return value
