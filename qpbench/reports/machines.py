"""Rows grouped by the machine that measured them: timings are never pooled across machines.

Every row names its machine (``machine``: CPU model, cores, cores usable, GPUs). A run on a Dask
cluster (``docs/dask.md``) has rows of several machines; a summary, table or plot that compares
times must then be made per machine, since one machine's milliseconds are not another's. Rows of
an older qpbench that recorded no machine form a group of their own.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import pandas as pd

from qpbench.reports import formatting as fmt
from qpbench.reports.document import Block, Heading, Image, Paragraph, Table, table
from qpbench.results import machine_of


@dataclass(frozen=True)
class MachineGroup:
    """One machine's rows; ``number`` (1, 2, ...) names it in headings and file names."""

    number: int
    fingerprint: str
    rows: pd.DataFrame

    @property
    def label(self) -> str:
        return f"machine {self.number}"


def machine_groups(frame: pd.DataFrame) -> list[MachineGroup]:
    """The table's machines, sorted by fingerprint (stable across reports), each with its rows."""
    machines = machine_of(frame)
    return [
        MachineGroup(number, fingerprint, frame[machines == fingerprint])
        for number, fingerprint in enumerate(sorted(set(machines)), start=1)
    ]


def tagged(blocks: list[Block], group: MachineGroup) -> list[Block]:
    """A machine's sections placed under its heading: headings one level down, and the machine named
    in every table title and plot caption (so that two machines' tables never read alike)."""
    tag = f" [{group.label}]"
    out: list[Block] = []
    for block in blocks:
        if isinstance(block, Heading):
            out.append(Heading(block.level + 1, block.text + tag))
        elif isinstance(block, Table):
            out.append(replace(block, title=block.title + tag))
        elif isinstance(block, Image):
            out.append(replace(block, caption=block.caption + tag))
        else:
            out.append(block)
    return out


def machines_section(groups: list[MachineGroup], records: Mapping[str, Mapping[str, Any]]) -> list[Block]:
    """The table that says which machine is which, with why the report is split by machine;
    ``records`` are the run records of environment.json (their Dask workers name the hosts)."""
    hosts = _hosts_by_machine(records)
    rows = []
    for group in groups:
        frame = group.rows
        solvers = ", ".join(dict.fromkeys(frame["solver"])) or fmt.DASH
        runs = ", ".join(r for r in dict.fromkeys(frame["run_id"]) if r) or fmt.DASH
        rows.append((group.label, group.fingerprint, ", ".join(hosts.get(group.fingerprint, [])) or fmt.DASH,
                     str(len(frame)), str(frame["case_id"].nunique()), solvers, runs))  # fmt: skip
    headers = ("machine", "fingerprint", "hosts (Dask workers)", "rows", "cases", "solvers", "runs")
    return [
        Heading(2, "Machines"),
        Paragraph(
            f"These rows were measured on {len(groups)} machines. Times of different machines are never pooled: "
            "each machine's tables and plots below compare the solvers on the cases that machine ran "
            "(on a cluster every solver of a case runs on the same machine)."
        ),
        table("Machines that measured the rows", headers, rows),
    ]


def _hosts_by_machine(records: Mapping[str, Mapping[str, Any]]) -> dict[str, list[str]]:
    """machine fingerprint -> host names, from the runs' Dask workers (where there are any)."""
    found: dict[str, list[str]] = {}
    for record in records.values():
        dask = record.get("dask")
        workers = dask.get("workers") if isinstance(dask, Mapping) else None
        for worker in workers if isinstance(workers, list) else []:
            if isinstance(worker, Mapping) and worker.get("machine"):
                names = found.setdefault(str(worker["machine"]), [])
                if str(worker.get("host")) not in names:
                    names.append(str(worker.get("host")))
    return found
