"""One machine's rows: a comparison never pools timings across machines.

A table written by a run on several machines (``docs/dask.md``) holds rows of each of them, and
one machine's milliseconds are not another's. A table with one machine is compared as it is
(the two tables of a comparison may come from two machines of a class; the environment notes say
when they differ). From a table with several machines, ``CompareOptions.machine`` picks one: a
fingerprint, or a part of one that names exactly one of them; without it the comparison is refused
with the machines listed. See ``docs/regression.md``.
"""

from __future__ import annotations

import pandas as pd

from qpbench.results import machine_of


def one_machine(table: pd.DataFrame, wanted: str | None, which: str, notes: list[str]) -> pd.DataFrame:
    """``table``'s rows of one machine; ``which`` names the table in errors and notes."""
    machines = machine_of(table)
    present = sorted(set(machines))
    if len(present) <= 1:
        return table
    if wanted is None:
        raise ValueError(f"the {which} table holds rows of {len(present)} machines ({'; '.join(present)}); "
                         "timings are never pooled across machines: choose one with --machine (a fingerprint "
                         "or a part of one)")
    matching = [m for m in present if wanted in m]
    if len(matching) != 1:
        found = "none" if not matching else f"{len(matching)}: {'; '.join(matching)}"
        raise ValueError(f"--machine {wanted!r} must name exactly one machine of the {which} table, "
                         f"it matches {found} (machines: {'; '.join(present)})")
    notes.append(f"{which}: the rows of machine {matching[0]} only ({len(present) - 1} other machine(s) left out)")
    return table[machines == matching[0]]
