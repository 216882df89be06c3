"""Reports and the run summary never pool timings across machines: rows of several machines (a
Dask cluster) get a Machines table and every section once per machine; rows of one machine give
the report they always did."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from qpbench.commands.run import print_summary
from qpbench.reports import build_report
from qpbench.reports.machines import machine_groups
from qpbench.results import ENVIRONMENT_FILE, NOT_RECORDED, RESULTS_FILE, load_table

FIXTURE = Path(__file__).parent / "data" / "report_mixed"  # 3 cases, one machine not recorded
XEON = "Intel(R) Xeon(R) Gold 6230 | 40 cores, 40 usable | no GPU"
EPYC = "AMD EPYC 7763 64-Core Processor | 128 cores, 8 usable | no GPU"
EQ_CASE = "eq_only-n10-m0-k2-B2-float64-cpu"  # measured on EPYC below; the other two cases on XEON


def results_with_machines(tmp_path: Path, machine_of_case: dict[str, str], default: str | None) -> Path:
    """The fixture's results, each row tagged with its case's machine (``default`` for the rest)."""
    out = tmp_path / "results"
    out.mkdir()
    shutil.copy(FIXTURE / ENVIRONMENT_FILE, out / ENVIRONMENT_FILE)
    lines = []
    for line in (FIXTURE / RESULTS_FILE).read_text().splitlines():
        row = json.loads(line)
        machine = machine_of_case.get(row["case_id"], default)
        if machine is not None:
            row["machine"] = machine
        lines.append(json.dumps(row))
    (out / RESULTS_FILE).write_text("\n".join(lines) + "\n")
    return out


@pytest.fixture(scope="module")
def two_machines(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    results = results_with_machines(tmp_path_factory.mktemp("two"), {EQ_CASE: EPYC}, XEON)
    path = build_report(results)
    return path, path.read_text(encoding="utf-8")


def sections(text: str) -> dict[str, str]:
    """The report's text under each '## Machine N: ...' heading, by machine fingerprint."""
    parts = re.split(r"^## Machine \d+: (.+)$", text, flags=re.MULTILINE)
    found = {}
    for fingerprint, body in zip(parts[1::2], parts[2::2], strict=True):
        found[fingerprint] = body.split("\n## Definitions")[0]
    return found


def test_rows_of_two_machines_get_a_machines_table_and_the_report_once_per_machine(
    two_machines: tuple[Path, str],
) -> None:
    path, text = two_machines
    assert "## Machines\n" in text and "on 2 machines (see Machines)" in text
    by_machine = sections(text)
    assert set(by_machine) == {XEON, EPYC}
    # machine 1 and 2 in sorted order of fingerprint; the table says which is which
    assert f"| machine 1 | {EPYC.replace('|', chr(92) + '|')} |" in text
    for number, fingerprint in ((1, EPYC), (2, XEON)):
        body = by_machine[fingerprint]
        assert f"### Summary per suite and tolerance level [machine {number}]" in body
        titles = re.findall(r"^\*\*(.+)\*\*$", body, flags=re.MULTILINE)
        assert titles and all(title.endswith(f"[machine {number}]") for title in titles)
        for link in re.findall(r"\((plots/[^)]+\.png)\)", body):
            assert Path(link).name.startswith(f"m{number}-") and (path.parent / link).exists()
    # each machine's tables hold only its own cases: eq_only ran on EPYC, optnet_random on XEON
    assert "eq_only" in by_machine[EPYC] and "optnet_random" not in by_machine[EPYC]
    assert "optnet_random" in by_machine[XEON] and "eq_only" not in by_machine[XEON]
    # the closing sections are the run's, once
    assert text.count("## What was run") == 1 and text.count("## Machine and versions") == 1


def test_rows_of_one_machine_give_the_report_they_always_did(tmp_path: Path) -> None:
    unrecorded = build_report(FIXTURE, tmp_path / "as-written").read_text(encoding="utf-8")
    one = results_with_machines(tmp_path, {}, XEON)
    tagged = build_report(one).read_text(encoding="utf-8")
    assert tagged == unrecorded  # one machine: no Machines table, no per-machine sections, same plots
    assert "[machine" not in tagged and "## Machines" not in tagged
    assert sorted(p.name for p in (one / "report" / "plots").iterdir()) == sorted(
        p.name for p in (tmp_path / "as-written" / "plots").iterdir()
    )


def test_machine_groups_sort_by_fingerprint_and_keep_unrecorded_rows_apart(tmp_path: Path) -> None:
    table = load_table(results_with_machines(tmp_path, {EQ_CASE: EPYC}, None))
    groups = machine_groups(table)
    assert [(g.number, g.fingerprint) for g in groups] == [(1, NOT_RECORDED), (2, EPYC)]
    assert sum(len(g.rows) for g in groups) == len(table)
    assert set(groups[1].rows["case_id"]) == {EQ_CASE}


def test_the_run_summary_is_per_machine(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    print_summary(results_with_machines(tmp_path, {EQ_CASE: EPYC}, XEON), {})
    text = capsys.readouterr().out
    assert f"Machine 1: {EPYC}" in text and f"Machine 2: {XEON}" in text
    assert text.count("Summary per solver and tolerance") == 2
    print_summary(FIXTURE, {})
    single = capsys.readouterr().out
    assert "Machine 1" not in single and single.count("Summary per solver and tolerance") == 1
