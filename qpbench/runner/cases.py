"""Expanding a suite into cases, and building each case's problems (once, seeded).

A case is one batch of problems on one device in one dtype; every solver of the case gets the
same batch, at each tolerance level of the case. ``case_id`` is stable across runs, so a re-run
finds the rows it already has.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from itertools import product
from typing import Any

import torch

from qpbench.problem import QPBatch
from qpbench.runner.specs import import_object
from qpbench.runner.suite import TEST_SETS, CaseGroup, Suite, _check_setting

# Settings a command line may override for every group of a suite.
OVERRIDABLE = (
    "solvers",
    "exclude_solvers",
    "tolerances",
    "dtypes",
    "devices",
    "batch_sizes",
    "seeds",
    "repeats",
    "warmups",
    "time_limit",
    "reference",
)


@dataclass(frozen=True)
class Case:
    suite: str
    family: str  # generator family, or the test set's name
    problem: str  # test-set problem name; "" for generated batches
    n: int | None  # None until a test-set problem is loaded
    m: int | None
    k: int | None
    batch_size: int
    seed: int
    dtype: str
    device: str
    solvers: tuple[str, ...]  # names or selectors (all-available, all-batched), resolved by the runner
    exclude_solvers: tuple[str, ...]  # glob patterns taken out of what 'solvers' selects
    tolerances: tuple[str, ...]
    repeats: int
    warmups: int
    time_limit: float
    reference: bool

    @property
    def is_test_set(self) -> bool:
        return self.family in TEST_SETS

    @property
    def case_id(self) -> str:
        shape = self.problem if self.is_test_set else f"n{self.n}-m{_size(self.m)}-k{_size(self.k)}"
        return f"{self.family}/{shape}/B{self.batch_size}/s{self.seed}/{self.dtype}/{self.device}"

    @property
    def torch_dtype(self) -> torch.dtype:
        return getattr(torch, self.dtype)

    def label(self) -> str:
        """Short text for the progress bar."""
        what = self.problem or f"{self.family} n={self.n}"
        return f"{what} B={self.batch_size} {self.dtype} {self.device}"


def _size(value: int | None) -> str:
    return "default" if value is None else str(value)


def apply_overrides(suite: Suite, overrides: dict[str, Any]) -> Suite:
    """The suite with command-line settings replacing every group's own (validated like the file)."""
    clean = {}
    for key, value in overrides.items():
        if value is None:
            continue
        if key not in OVERRIDABLE:
            raise ValueError(f"cannot override {key!r}; overridable: {', '.join(OVERRIDABLE)}")
        clean[key] = _check_setting(key, value, "command line")
    if not clean:
        return suite
    groups = tuple(replace(group, **clean, overridden=group.overridden | set(clean)) for group in suite.groups)
    return replace(suite, groups=groups)


def expand(suite: Suite) -> list[Case]:
    """Every case of the suite, in file order (duplicates dropped)."""
    cases: dict[str, Case] = {}
    for group in suite.groups:
        for case in _expand_group(suite.name, group):
            cases.setdefault(case.case_id, case)
    return list(cases.values())


# Group settings every case of the group carries unchanged.
_CASE_SETTINGS = ("solvers", "exclude_solvers", "tolerances", "repeats", "warmups", "time_limit", "reference")


def _expand_group(suite: str, group: CaseGroup) -> Iterator[Case]:
    if group.test_set is not None:
        items = [(name, None, None, None) for name in _test_set_problems(group)]
        family = group.test_set
    else:
        family = group.family or ""
        items = [("", n, *_default_sizes(family, n, m, k)) for n, m, k in group.sizes]
    settings = {key: getattr(group, key) for key in _CASE_SETTINGS}
    seeds = group.seeds if group.test_set is None else group.seeds[:1]
    for (problem, n, m, k), batch_size, seed, dtype, device in product(
        items, group.batch_sizes, seeds, group.dtypes, group.devices
    ):
        yield Case(
            suite=suite,
            family=family,
            problem=problem,
            n=n,
            m=m,
            k=k,
            batch_size=batch_size,
            seed=seed,
            dtype=dtype,
            device=device,
            **settings,
        )


def _default_sizes(family: str, n: int, m: int | None, k: int | None) -> tuple[int | None, int | None]:
    """Fill m / k left out of the suite from the family's defaults, so the case id is explicit."""
    if (m is not None and k is not None) or ":" in family:
        return m, k
    try:
        from qpbench.generators import FAMILIES
    except ImportError:
        return m, k
    fam = FAMILIES.get(family)
    if fam is None or not hasattr(fam, "default_sizes"):
        return m, k
    dm, dk = fam.default_sizes(n)
    return (dm if m is None else m), (dk if k is None else k)


def _test_set_problems(group: CaseGroup) -> list[str]:
    from qpbench.loaders import maros_meszaros

    if group.problems is not None:
        return list(group.problems)
    return list(maros_meszaros.list_problems(max_n=group.max_n, max_rows=group.max_rows))


def generator(family: str) -> Callable[..., QPBatch]:
    """``module:function`` names a generator outside the registry (tests, experiments)."""
    if ":" in family:
        return import_object(family, "family")
    from qpbench.generators import generate

    def registry_family(**kwargs: Any) -> QPBatch:
        return generate(family, **kwargs)

    return registry_family


def build_batch(case: Case) -> QPBatch:
    """The case's problems, on its device and in its dtype (the same for every solver of the case)."""
    if case.is_test_set:
        from qpbench.loaders import maros_meszaros

        single = maros_meszaros.load(case.problem, dtype=case.torch_dtype, device=case.device)
        if case.batch_size == 1:
            return single
        return QPBatch.concat([single] * case.batch_size, name=single.name)
    make = generator(case.family)
    return make(
        batch_size=case.batch_size,
        n=case.n,
        m=case.m,
        k=case.k,
        seed=case.seed,
        dtype=case.torch_dtype,
        device=case.device,
    )
