"""Runs that keep their record: one environment record per run id, never rewritten by a later
run; a resume refuses rows measured differently; a torn last line is repaired, no row lost."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from qpbench.adapters.base import Adapter, Capabilities, SolveOutput, Tolerance
from qpbench.cli import main as cli_main
from qpbench.problem import QPBatch
from qpbench.results import (
    ENVIRONMENT_FILE,
    RESULTS_FILE,
    ResultsFileWarning,
    load_environment,
    load_run_records,
    parse_results,
    read_rows,
    repair_results,
)
from qpbench.runner import ResumeConflictError, RunOptions, Suite, load_suite, run_suite
from qpbench.status import Status

HERE = __name__
VERSION = {"value": "1.0"}


def unconstrained(batch_size: int, n: int, m: Any, k: Any, seed: int, dtype: torch.dtype, device: str) -> QPBatch:
    gen = torch.Generator().manual_seed(seed)
    U = torch.randn(batch_size, n, n, generator=gen, dtype=torch.float64)
    Q = U @ U.transpose(1, 2) + n * torch.eye(n, dtype=torch.float64)
    p = torch.randn(batch_size, n, generator=gen, dtype=torch.float64)
    return QPBatch(Q=Q, p=p).to(device=device, dtype=dtype)


class VersionedExact(Adapter):
    """Solves unconstrained QPs exactly; its version is whatever the test sets."""

    name = "versioned_exact"
    capabilities = Capabilities(batched=True, differentiable=False)

    def _import(self) -> Any:
        return None

    def version(self) -> str:
        return VERSION["value"]

    def options(self, tolerance: Tolerance, time_limit: float) -> dict[str, Any]:
        return {}

    def setup(self, batch: QPBatch, tolerance: Tolerance, time_limit: float) -> Any:
        return batch

    def solve(self, prepared: QPBatch) -> SolveOutput:
        z = torch.linalg.solve(prepared.expanded("Q"), -prepared.expanded("p"))
        return SolveOutput(z=z, status=np.full(prepared.batch_size, int(Status.SOLVED)))


SPEC = f"{HERE}:VersionedExact"


def write_suite(tmp_path: Path) -> Path:
    path = tmp_path / "s.toml"
    path.write_text(
        f'solvers = ["{SPEC}"]\ntolerances = ["low", "mid"]\nbatch_sizes = [2]\nrepeats = 1\nwarmups = 0\n'
        f'time_limit = 5.0\nreference = false\n[[cases]]\nfamily = "{HERE}:unconstrained"\nn = [2, 3, 4]\n'
    )
    return path


def run(path: Path, out: Path, **options: Any) -> Any:
    return run_suite(load_suite(path), RunOptions(out_dir=out, quiet=True, in_process=True, **options))


def with_sizes(suite: Suite, ns: list[int], **settings: Any) -> Suite:
    sizes = tuple((n, None, None) for n in ns)
    return replace(suite, groups=tuple(replace(group, sizes=sizes, **settings) for group in suite.groups))


def keys(out: Path) -> list[tuple[str, str, str]]:
    return [(r["case_id"], r["solver"], r["tolerance"]) for r in read_rows(out)]


@pytest.fixture(autouse=True)
def _version() -> Any:
    VERSION["value"] = "1.0"
    yield
    VERSION["value"] = "1.0"


# ----------------------------------------------------------------------------- the run records
def test_a_resume_never_rewrites_an_earlier_runs_record(tmp_path: Path) -> None:
    path, out = write_suite(tmp_path), tmp_path / "out"
    first = run(path, out, threads=1)
    before = (out / ENVIRONMENT_FILE).read_bytes()
    again = run(path, out, threads=1)  # nothing left to do
    assert again.written == 0 and again.skipped == 6
    assert (out / ENVIRONMENT_FILE).read_bytes() == before  # an empty resume writes no record
    first_record = load_run_records(out)[first.run_id]

    wider = with_sizes(load_suite(path), [2, 3, 4, 5])
    third = run_suite(wider, RunOptions(out_dir=out, quiet=True, in_process=True, threads=1))
    assert third.written == 2
    records = load_run_records(out)
    assert list(records) == [first.run_id, third.run_id]  # one record per run that wrote rows
    assert records[first.run_id] == first_record  # untouched by the later run
    assert records[third.run_id]["rows_written"] == 2
    rows = read_rows(out)
    assert {r["run_id"] for r in rows[:6]} == {first.run_id} and {r["run_id"] for r in rows[6:]} == {third.run_id}
    # every row points at its own run's record, whose thread count is the row's
    for row in rows:
        assert records[row["run_id"]]["torch_threads"] == row["torch_threads"] == 1
    shown = load_environment(out)
    assert shown["run_id"] == third.run_id and set(shown["runs"]) == {first.run_id, third.run_id}
    assert shown["runs"][first.run_id].startswith("6 rows;")
    assert load_environment(out, first.run_id)["run_id"] == first.run_id


def test_the_report_shows_the_measuring_runs_record_not_an_empty_resumes(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from qpbench.reports import build_report

    path, out = write_suite(tmp_path), tmp_path / "out"
    first = run(path, out, threads=1)
    run(path, out, threads=1)
    text = build_report(out).read_text(encoding="utf-8")
    assert f"| run_id | {first.run_id} |" in text and "| torch_threads | 1 |" in text


def test_old_single_record_files_are_read(tmp_path: Path) -> None:
    old = {"run_id": "b", "torch_threads": 2, "previous_runs": [{"run_id": "a", "torch_threads": 4}]}
    (tmp_path / ENVIRONMENT_FILE).write_text(json.dumps(old))
    records = load_run_records(tmp_path)
    assert list(records) == ["a", "b"] and records["b"]["torch_threads"] == 2
    assert "previous_runs" not in records["b"]


def test_the_environment_file_and_a_repaired_table_are_as_readable_as_the_rows(tmp_path: Path) -> None:
    # they were written through tempfile.mkstemp: mode 0600 whatever the umask, unreadable to others
    out = tmp_path / "out"
    previous = os.umask(0o022)
    try:
        run(write_suite(tmp_path), out)
        with open(out / RESULTS_FILE, "a", encoding="utf-8") as fh:
            fh.write('{"torn')
        assert repair_results(out)
    finally:
        os.umask(previous)
    for name in (ENVIRONMENT_FILE, RESULTS_FILE):
        assert (out / name).stat().st_mode & 0o777 == 0o644, name
    assert not list(out.glob(".*.tmp"))


@pytest.mark.parametrize(("text", "found"), [("{\"runs\": {", "is not valid JSON"), ("[]", "is a JSON list")])
def test_a_damaged_environment_file_is_named_not_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, found: str
) -> None:
    out = tmp_path / "out"
    run(write_suite(tmp_path), out)
    (out / ENVIRONMENT_FILE).write_text(text)
    with pytest.raises(ValueError, match=f"{ENVIRONMENT_FILE} {found}"):
        load_run_records(out)
    compare = ["compare", str(out), str(out), "--solver", VersionedExact.name]
    for command in (["report", str(out), "-o", str(tmp_path / "report")], compare):
        assert cli_main(command) == 2
        err = capsys.readouterr().err
        assert f"{out / ENVIRONMENT_FILE} {found}" in err and "fix or remove it" in err


# ----------------------------------------------------------------------------- what makes a row done
@pytest.mark.parametrize(
    ("change", "setting"),
    [
        ({"threads": 2}, "torch_threads: 1 in 6 row(s)"),
        ({"repeats": 3}, "repeats: 1 in 6 row(s)"),
        ({"warmups": 1}, "warmups: 0 in 6 row(s)"),
        ({"time_limit": 9.0}, "time_limit: 5.0 in 6 row(s)"),
    ],
)
def test_a_resume_with_other_measurement_settings_refuses(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], change: dict[str, Any], setting: str
) -> None:
    path, out = write_suite(tmp_path), tmp_path / "out"
    argv = ["run", str(path), "--out", str(out), "--in-process", "--quiet", "--no-report"]
    assert cli_main([*argv, "--threads", "1"]) == 0
    rows_before = (out / RESULTS_FILE).read_bytes()
    records_before = (out / ENVIRONMENT_FILE).read_bytes()
    flags = {"threads": "--threads", "repeats": "--repeats", "warmups": "--warmups", "time_limit": "--time-limit"}
    extra = [item for key, value in change.items() for item in (flags[key], str(value))]
    if "threads" not in change:
        extra += ["--threads", "1"]
    capsys.readouterr()
    assert cli_main([*argv, *extra]) == 2
    err = capsys.readouterr().err
    assert setting in err and "--fresh" in err and str(out) in err
    assert (out / RESULTS_FILE).read_bytes() == rows_before  # nothing measured, nothing rewritten
    assert (out / ENVIRONMENT_FILE).read_bytes() == records_before
    assert cli_main([*argv, *extra, "--fresh"]) == 0
    assert len(read_rows(out)) == 6 and len(load_run_records(out)) == 1


def test_a_new_solver_version_or_other_code_refuses(tmp_path: Path) -> None:
    path, out = write_suite(tmp_path), tmp_path / "out"
    run(path, out)
    VERSION["value"] = "2.0"
    with pytest.raises(ResumeConflictError, match=r"solver_version: '1.0' in 6 row\(s\).*'2.0' in this run"):
        run(path, out)
    VERSION["value"] = "1.0"
    rows = read_rows(out)
    rows[0]["qpbench_commit"] = "0" * 40  # a row written by other code
    (out / RESULTS_FILE).write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(ResumeConflictError, match=r"qpbench_commit: '0{40}' in 1 row\(s\)") as info:
        run(path, out)
    assert [d.setting for d in info.value.differences] == ["qpbench_commit"]


def test_rows_outside_this_run_must_share_its_run_wide_settings_only(tmp_path: Path) -> None:
    path, out = write_suite(tmp_path), tmp_path / "out"
    run(path, out)
    # other cases with other repeats: allowed (a suite's groups may differ too)
    other = with_sizes(load_suite(path), [7], repeats=2)
    summary = run_suite(other, RunOptions(out_dir=out, quiet=True, in_process=True))
    assert summary.written == 2 and len(read_rows(out)) == 8


# ----------------------------------------------------------------------------- torn lines
def test_a_torn_last_line_is_repaired_on_resume_and_no_row_is_lost(tmp_path: Path) -> None:
    path, out = write_suite(tmp_path), tmp_path / "out"
    run(path, out)
    complete = read_rows(out)
    lines = (out / RESULTS_FILE).read_text().splitlines(keepends=True)
    (out / RESULTS_FILE).write_text("".join(lines[:-1]) + lines[-1][:57])  # the last write torn
    with pytest.warns(ResultsFileWarning, match="the last line is a torn row"):
        assert read_rows(out) == complete[:-1]
    messages: list[str] = []
    summary = run_suite(load_suite(path), RunOptions(out_dir=out, quiet=True, in_process=True), log=messages.append)
    assert summary.written == 1 and summary.skipped == 5
    assert any("repaired" in m and "torn row" in m for m in messages)
    text = (out / RESULTS_FILE).read_text()
    assert text.endswith("\n") and all(json.loads(line) for line in text.splitlines())  # every line a whole row
    assert sorted(keys(out)) == sorted((r["case_id"], r["solver"], r["tolerance"]) for r in complete)
    assert text.splitlines(keepends=True)[:5] == lines[:5]  # the complete rows kept byte for byte


def test_a_row_merged_into_a_torn_line_by_an_older_qpbench_is_recovered(tmp_path: Path) -> None:
    rows = [{"run_id": "r", "case_id": f"c{i}", "solver": "s", "error": 'a "{" b'} for i in range(3)]
    lines = [json.dumps(r) for r in rows]
    text = lines[0] + "\n" + lines[1][:20] + lines[2] + "\n"
    parsed = parse_results(text, Path("x"))
    assert parsed.rows == [rows[0], rows[2]] and "holds a torn row (20 characters)" in parsed.damage[0]
    (tmp_path / RESULTS_FILE).write_text(text)
    assert repair_results(tmp_path)
    assert (tmp_path / RESULTS_FILE).read_text() == lines[0] + "\n" + lines[2] + "\n"
    assert repair_results(tmp_path) == []  # repaired once, clean afterwards
    (tmp_path / RESULTS_FILE).write_text(lines[0] + "\nnot json\n" + lines[2] + "\n")
    with pytest.raises(ValueError, match="line 2 is not a results row"):
        read_rows(tmp_path)


def test_a_run_killed_mid_write_resumes_with_every_row(tmp_path: Path) -> None:
    """A real crash: the run's process writes half of its 4th row and is killed by SIGKILL."""
    path, out = write_suite(tmp_path), tmp_path / "out"
    script = textwrap.dedent(
        f"""
        import os, signal, sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        import qpbench.results as results
        from qpbench.runner import RunOptions, load_suite, run_suite

        append, count = results._append_line, [0]

        def tearing_append(path, line):
            count[0] += 1
            if count[0] == 4:
                with open(path, "a", encoding="utf-8") as fh:
                    fh.write(line[: len(line) // 2])
                    fh.flush()
                os.kill(os.getpid(), signal.SIGKILL)
            append(path, line)

        results._append_line = tearing_append
        run_suite(load_suite({str(path)!r}), RunOptions(out_dir={str(out)!r}, quiet=True, in_process=True))
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == -signal.SIGKILL, done.stderr
    text = (out / RESULTS_FILE).read_text()
    assert text.count("\n") == 3 and not text.endswith("\n")  # three rows and a torn fourth
    with warnings.catch_warnings():
        warnings.simplefilter("error", ResultsFileWarning)
        with pytest.raises(ResultsFileWarning):
            read_rows(out)
    summary = run(path, out)
    assert summary.skipped == 3 and summary.written == 3
    found = keys(out)
    assert len(found) == len(set(found)) == 6  # every row once, none merged, none lost
    assert all(line and json.loads(line) for line in (out / RESULTS_FILE).read_text().splitlines())
    assert os.path.getsize(out / ENVIRONMENT_FILE) > 0 and len(load_run_records(out)) == 2
