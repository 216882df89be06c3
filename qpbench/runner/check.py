"""The pre-run check: every value of a suite that needs the installation to judge, before any work.

:mod:`qpbench.runner.suite` checks what a file says on its own (keys, types, ranges). This module
checks it against what is installed: the family exists and accepts each size (a trial build of one
problem, so the rules are the generator's own), the test set's named problems exist, and every
solver name answers to an adapter. Each error is a ValueError naming the file, the group
(``cases[1]``) or the command line, and the key; the CLI turns it into exit code 2.

The result is a :class:`RunPlan`: the suite's cases with each case's solvers resolved.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field

from qpbench.runner.cases import Case, expand, generator
from qpbench.runner.solvers import SolverRef, resolve_solvers
from qpbench.runner.suite import CaseGroup, Suite

Selection = tuple[tuple[str, ...], tuple[str, ...]]  # (solvers, exclude_solvers)


@dataclass(frozen=True)
class RunPlan:
    cases: list[Case]
    solvers: dict[Selection, list[SolverRef]] = field(default_factory=dict)

    def solvers_for(self, case: Case) -> list[SolverRef]:
        return self.solvers[selection(case)]

    @property
    def units(self) -> int:
        """(case, solver, tolerance) rows the plan asks for."""
        return sum(len(self.solvers_for(case)) * len(case.tolerances) for case in self.cases)


def selection(item: Case | CaseGroup) -> Selection:
    return item.solvers, item.exclude_solvers


def plan_run(suite: Suite) -> RunPlan:
    """Check ``suite`` against the installation and expand it; ValueError names what is wrong."""
    solvers: dict[Selection, list[SolverRef]] = {}
    for group in suite.groups:
        check_problems(group)
        if selection(group) not in solvers:  # once per distinct selection ('all-available' tries every adapter)
            solvers[selection(group)] = _group_solvers(group)
    return RunPlan(cases=expand(suite), solvers=solvers)


def check_problems(group: CaseGroup) -> None:
    if group.test_set is not None:
        _check_test_set(group)
    else:
        _check_family(group)


def _group_solvers(group: CaseGroup) -> list[SolverRef]:
    try:
        refs = resolve_solvers(group.solvers, group.exclude_solvers)
    except ValueError as exc:
        raise ValueError(f"{group.origin('solvers')}: {_strip_argument(exc)}") from None
    if not refs:
        excluded = f" once {group.origin('exclude_solvers')} = {list(group.exclude_solvers)} is applied"
        raise ValueError(f"{group.origin('solvers')} = {list(group.solvers)} selects no solver{excluded}")
    return refs


def _strip_argument(exc: Exception) -> str:
    """The registry's messages start with the argument name ('name: ...'), which means nothing here."""
    text = str(exc)
    return text.removeprefix("name: ")


# ----------------------------------------------------------------------------- families
def _check_family(group: CaseGroup) -> None:
    family = group.family or ""
    if ":" not in family:
        from qpbench.generators import FAMILIES

        if family not in FAMILIES:
            close = difflib.get_close_matches(family, sorted(FAMILIES), n=3)
            hint = f"; closest: {', '.join(close)}" if close else ""
            raise ValueError(
                f"{group.origin('family')}: unknown family {family!r}{hint} (known: {', '.join(sorted(FAMILIES))}; "
                "see problems/families.md)"
            )
    try:
        make = generator(family)
    except ValueError as exc:
        raise ValueError(f"{group.origin('family')}: {exc}") from None
    for n, m, k in group.sizes:
        reason = _fixed_size_conflict(family, n, m, k) or _trial_build_failure(make, n, m, k, group.seeds[0])
        if reason:
            shown = ", ".join(f"{key}={value}" for key, value in (("n", n), ("m", m), ("k", k)) if value is not None)
            origin = group.origin(_size_key(group, reason))
            raise ValueError(f"{origin}: family {family!r} rejects ({shown}): {reason}")


def _size_key(group: CaseGroup, reason: str) -> str:
    """The key to point at: 'sizes', else the one of n, m, k the reason starts with (else 'n')."""
    if "sizes" in group.given:
        return "sizes"
    named = re.match(r"\s*(n|m|k)\b", reason)
    return named.group(1) if named and named.group(1) in group.given else "n"


def _fixed_size_conflict(family: str, n: int, m: int | None, k: int | None) -> str | None:
    """For families whose m or k follow from n: a given value that differs, said in suite terms."""
    if ":" in family:
        return None
    from qpbench.generators import FAMILIES

    fam = FAMILIES[family]
    if n < fam.min_n:
        return f"needs n >= {fam.min_n}"
    try:
        defaults = dict(zip(("m", "k"), fam.default_sizes(n), strict=True))
    except ValueError as exc:
        return str(exc)
    for key, given in (("m", m), ("k", k)):
        if key in fam.ignores and given is not None and given != defaults[key]:
            value = defaults[key]
            return f"{key} follows from n ({key} = {value} for n = {n}): leave {key!r} out or give {value}"
    return None


def _trial_build_failure(make: object, n: int, m: int | None, k: int | None, seed: int) -> str | None:
    """Build one problem of this size (cheap, seeded); the generator's own error if it refuses."""
    import torch

    try:
        make(batch_size=1, n=n, m=m, k=k, seed=seed, dtype=torch.float64, device="cpu")  # type: ignore[operator]
    except (ValueError, TypeError) as exc:
        return str(exc)
    return None


# ----------------------------------------------------------------------------- test sets
def _check_test_set(group: CaseGroup) -> None:
    from qpbench.loaders import maros_meszaros

    try:
        known = maros_meszaros.list_problems()
    except (FileNotFoundError, ValueError) as exc:
        raise ValueError(f"{group.origin('test_set')} = {group.test_set!r}: {exc}") from None
    if group.problems is None and not maros_meszaros.list_problems(max_n=group.max_n, max_rows=group.max_rows):
        limits = ", ".join(f"{key} = {getattr(group, key)}" for key in ("max_n", "max_rows") if getattr(group, key))
        raise ValueError(f"{group.source}: {group.label}: {limits} leaves no problem of {group.test_set}")
    for name in group.problems or ():
        if name not in known:
            close = difflib.get_close_matches(name, known, n=3)
            hint = f"; closest: {', '.join(close)}" if close else ""
            raise ValueError(
                f"{group.origin('problems')}: {name!r} is not a problem of {group.test_set} "
                f"({len(known)} problems in {maros_meszaros.data_dir()}){hint}"
            )
