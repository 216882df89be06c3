"""Reports from hand-made results tables: every section and plot is written, numbers are right.

The fixture tests/data/report_mixed holds 12 rows: suite "unit", solvers inhouse / osqp / broken
(broken never succeeds), tolerance mid on three cases and high on one case where nobody succeeds.
The expected numbers below are worked out by hand from that file.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from qpbench.cli import main as cli_main
from qpbench.reports import build_report, plots, summary
from qpbench.results import load_table, write_environment, write_row

FIXTURE = Path(__file__).parent / "data" / "report_mixed"
MID = "suite unit, tolerance mid (1e-06)"
HIGH = "suite unit, tolerance high (1e-09)"


def markdown_table(text: str, title: str) -> list[list[str]]:
    """Body rows of the table whose one-line title is exactly ``title``."""
    lines = text.splitlines()
    start = lines.index(f"**{title}**")
    rows = []
    for line in lines[start + 3 :]:  # title, blank, header; the separator row is skipped below
        if not line.startswith("|"):
            break
        if line.startswith("| ---") or set(line) <= {"|", " ", "-"}:
            continue
        rows.append([cell.strip() for cell in line.strip("|").split(" | ")])
    return rows


@pytest.fixture(scope="module")
def mixed_report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("report")
    path = build_report(FIXTURE, out)
    return path, path.read_text(encoding="utf-8")


def test_report_writes_markdown_html_and_every_plot(mixed_report: tuple[Path, str]) -> None:
    path, text = mixed_report
    out = path.parent
    assert path.name == "report.md"
    for heading in (
        "# qpbench report: unit",
        "## Fastest solver per problem size and batch size",
        "## Contents",
        "## Machine and versions",
        "## What was run",
        "## Summary per suite and tolerance level",
        "### Suite unit, tolerance mid (1e-06)",
        "### Suite unit, tolerance high (1e-09)",
        "## Time vs batch size",
        "## Gradients",
        "## Failures",
        "## Definitions",
    ):
        assert heading in text.splitlines(), heading
    links = re.findall(r"!\[[^\]]*\]\((plots/[^)]+\.png)\)", text)
    expected = {
        "plots/profile-unit-mid.png",
        "plots/profile-unit-high.png",
        "plots/accuracy-unit-mid.png",
        "plots/accuracy-unit-high.png",
        "plots/time-unit-optnet_random-n10-m5-k0-float64-cpu-mid.png",
        "plots/per-problem-unit-optnet_random-n10-m5-k0-float64-cpu-mid.png",
        "plots/speedup-unit-optnet_random-n10-m5-k0-float64-cpu-mid.png",
        "plots/time-unit-optnet_random-n10-m5-k0-float64-cpu-high.png",
        "plots/speedup-unit-optnet_random-n10-m5-k0-float64-cpu-high.png",
        "plots/time-unit-eq_only-n10-m0-k2-float64-cpu-mid.png",  # one batch size: one point
        "plots/per-problem-unit-eq_only-n10-m0-k2-float64-cpu-mid.png",
        "plots/backward-forward.png",
    }
    assert expected <= set(links)
    for link in links:
        png = (out / link).read_bytes()
        assert png.startswith(b"\x89PNG") and len(png) > 5000, link
    # eq_only: only inhouse ran, so there is nothing to compare with, and the report says so
    assert "plots/speedup-unit-eq_only-n10-m0-k2-float64-cpu-mid.png" not in links
    assert "No speed-up plot: `inhouse` and no other solver both ran here." in text

    html = (out / "report.html").read_text(encoding="utf-8")
    assert html.count('src="data:image/png;base64,') == len(links)
    assert "http://" not in html and "https://" not in html and "<link" not in html
    assert "<table>" in html and "Success rate — " + MID in html


def test_environment_and_contents(mixed_report: tuple[Path, str]) -> None:
    _, text = mixed_report
    env = dict(markdown_table(text, "Machine and versions (environment.json)"))
    assert env["cpu.model"] == "Test CPU @ 2.0GHz"
    assert env["cpu.cores"] == "2"
    assert env["versions.torch"] == "2.13.0"
    assert env["git_commit"] == "abc1234"
    assert env["date"] == "2026-11-21T05:00:00Z"
    contents = dict(markdown_table(text, "Run contents"))
    assert contents["suites"] == "unit"
    assert contents["batch sizes"] == "1, 2, 4"
    assert contents["tolerance levels"] == "mid, high"
    assert contents["cases"] == "3"
    assert dict(markdown_table(text, "Solver versions")) == {"inhouse": "0.1.0", "osqp": "1.1.3", "broken": "9.9"}


def test_success_rates_by_hand(mixed_report: tuple[Path, str]) -> None:
    _, text = mixed_report
    # mid, every solver over the same 3 cases (7 problems): inhouse 1+4+2; osqp 1+3 of the 5 it
    # ran (eq_only unsupported, so 4 of 7 overall); broken ran all three and solved none
    assert markdown_table(text, f"Success rate — {MID} (every solver over the same 3 cases)") == [
        ["inhouse", "3", "0", "7", "7", "0", "100.0%", "100.0%", "100.0%", "—"],
        ["osqp", "2", "1 unsupported", "7", "4", "1", "57.1%", "80.0%", "100.0%", "solver"],
        ["broken", "3", "0", "7", "0", "7", "0.0%", "0.0%", "—", "—"],
    ]
    # high: the only case fails for everybody; broken was not even available, so it has no numbers
    assert markdown_table(text, f"Success rate — {HIGH} (every solver over the same 1 cases)") == [
        ["inhouse", "1", "0", "1", "0", "1", "0.0%", "0.0%", "0.0%", "solver"],  # said solved, residual too large
        ["osqp", "1", "0", "1", "0", "1", "0.0%", "0.0%", "100.0%", "—"],  # said max_iter: an honest failure
        ["broken", "0", "1 unavailable", "—", "—", "—", "—", "—", "—", "—"],
    ]


def test_penalized_shifted_geomean_by_hand(mixed_report: tuple[Path, str]) -> None:
    _, text = mixed_report
    # successful times 2, 4, 3 ms (inhouse) and 4 ms (osqp): median 3.5 ms -> shift 0.35 ms.
    # A failed case, and a case not run, counts the time limit, 1 s; every mean is over all 3 cases.
    # inhouse: (2.35e-3 * 4.35e-3 * 3.35e-3)^(1/3) - 0.35e-3 = 2.8974e-3
    # osqp:    (4.35e-3 * 1.00035 * 1.00035)^(1/3) - 0.35e-3 = 0.16293;   / 2.8974e-3 = 56.23
    #          (B = 4 failed one problem; eq_only is unsupported, not dropped from its mean)
    # broken:  1.0 on each of its 3 cases;                               / 2.8974e-3 = 345.14
    title = (
        f"Failure-penalized shifted geometric mean of solve time — {MID} "
        "(1.0 = best; shift 3.50e-04 s; a failed or not-run case counts 1.00e+00 s, time limit)"
    )
    assert markdown_table(text, title) == [
        # spread of the penalized times beside the mean: osqp's are 4 ms and the 1 s penalties
        ["inhouse", "1.00", "2.90e-03", "2.00e-03", "3.00e-03", "4.00e-03", "3 of 3"],
        ["osqp", "56.23", "1.63e-01", "4.00e-03", "1.00e+00", "1.00e+00", "2 of 3"],
        ["broken", "345.14", "1.00e+00", "1.00e+00", "1.00e+00", "1.00e+00", "3 of 3"],
    ]
    high_title = (
        f"Failure-penalized shifted geometric mean of solve time — {HIGH} "
        "(1.0 = best; shift 1.00e-03 s; a failed or not-run case counts 1.00e+00 s, time limit)"
    )
    assert markdown_table(text, high_title) == []
    assert "No solver succeeded on any case here, so there is no ranking by time." in text


def test_performance_profile_by_hand(mixed_report: tuple[Path, str]) -> None:
    _, text = mixed_report
    # B=1: inhouse 2 ms best, osqp 2x; B=4 and eq_only: only inhouse succeeded
    assert markdown_table(text, f"Performance profile — {MID} (3 cases solved by some solver)") == [
        ["inhouse", "100.0%", "100.0%", "100.0%", "100.0%"],
        ["osqp", "0.0%", "33.3%", "33.3%", "33.3%"],
        ["broken", "0.0%", "0.0%", "0.0%", "0.0%"],
    ]
    # high: nobody succeeded, so there is no case to profile
    assert markdown_table(text, f"Performance profile — {HIGH} (0 cases solved by some solver)") == [
        ["inhouse", "—", "—", "—", "—"],
        ["osqp", "—", "—", "—", "—"],
    ]


def test_residuals_batch_times_and_gradients(mixed_report: tuple[Path, str]) -> None:
    _, text = mixed_report
    residuals = markdown_table(text, f"Residuals over rows that ran — {MID}")
    assert [row[:5] for row in residuals] == [
        ["inhouse", "3", "2.00e-09", "2.00e-09", "3.00e-09"],
        ["osqp", "2", "5.00e-06", "2.00e-07", "3.00e-07"],
    ]  # broken never ran to an answer, so it has no residual row
    batch = markdown_table(text, "Batch times — optnet_random n=10 m=5 k=0, float64 on cpu, tolerance mid, suite unit")
    assert batch == [
        ["inhouse", "1", "0", "ok", "1/1", "2.00e-03", "1.80e-03", "2.50e-03", "2.00e-03", "1.00"],
        ["inhouse", "4", "0", "ok", "4/4", "4.00e-03", "3.80e-03", "4.50e-03", "1.00e-03", "1.00"],
        ["osqp", "1", "0", "ok", "1/1", "4.00e-03", "3.50e-03", "5.00e-03", "4.00e-03", "0.50"],
        ["osqp", "4", "0", "ok", "3/4", "1.00e-02", "9.00e-03", "1.20e-02", "2.50e-03", "0.40"],
        ["broken", "1", "0", "failed", "0/1", "—", "—", "—", "—", "—"],
        ["broken", "4", "0", "timeout", "0/4", "—", "—", "—", "—", "—"],
    ]
    # inhouse forward 2 and 4 ms, backward 1 and 4 ms: ratios 0.5 and 1.0
    assert markdown_table(text, "Backward pass and gradient accuracy per solver (all suites and tolerances)") == [
        ["inhouse", "2", "3.00e-03", "2.50e-03", "0.75", "3.00e-07", "2.00e-07"],
    ]
    assert "qpth returns their MEAN" in text


def test_failures_are_listed_with_outcome_status_and_error(mixed_report: tuple[Path, str]) -> None:
    _, text = mixed_report
    failures = markdown_table(text, "Failed or partly failed rows (6)")
    by_key = {(row[0], row[2], row[3], row[5]): row for row in failures}
    assert len(failures) == 6
    osqp = by_key[("osqp", "optnet_random n=10 m=5 k=0", "4", "mid")]
    # failed test: its one unsolved problem failed on status; worst residual: primal 5e-6
    assert osqp[6:] == ["ok", "3/4", "status 1", "solved 3, max_iter 1", "5.00e-06", "—"]
    broken = by_key[("broken", "optnet_random n=10 m=5 k=0", "1", "mid")]
    assert broken[6:] == ["failed", "0/1", "failed", "—", "—", "RuntimeError: boom"]  # last line of the traceback
    assert by_key[("broken", "eq_only n=10 m=0 k=2", "2", "mid")][6] == "crashed"
    assert by_key[("broken", "optnet_random n=10 m=5 k=0", "4", "mid")][11] == "exceeded the time limit of 1.0 s"
    # said solved, but the primal residual 5e-9 is above the 1e-9 tolerance: a wrong answer, on primal
    inhouse = by_key[("inhouse", "optnet_random n=10 m=5 k=0", "1", "high")]
    assert inhouse[6:11] == ["ok", "0/1", "primal 1", "solved 1", "5.00e-09"]
    # osqp's high row predates the n_failed_* columns: its test is read from its status counts
    assert by_key[("osqp", "optnet_random n=10 m=5 k=0", "1", "high")][8] == "status 1"
    assert markdown_table(text, "Not run: unsupported, unavailable or skipped (2 rows)") == [
        ["unavailable", "package broken is not installed", "broken", "1"],
        ["unsupported", "equality-only problems need inequality rows", "osqp", "1"],
    ]


def test_penalty_without_time_limit_is_ten_times_the_slowest_solve() -> None:
    frame = summary.prepare(load_table(FIXTURE))
    mid = frame[frame["tolerance"] == "mid"]
    geo, shift, penalty = summary.penalized_geomeans(mid, time_limit=None)
    # slowest measured solve in the mid group: osqp B=4, max 12 ms -> penalty 0.12 s
    assert penalty == pytest.approx(0.12)
    assert shift == pytest.approx(3.5e-4)
    by_solver = geo.set_index("solver")
    assert by_solver.loc["broken", "geomean"] == pytest.approx(0.12)
    # osqp: 4 ms, then the penalty for its failed B = 4 case and for the eq_only case it could not take
    assert by_solver.loc["osqp", "geomean"] == pytest.approx((4.35e-3 * 0.12035**2) ** (1 / 3) - 3.5e-4)
    assert by_solver.loc["inhouse", "relative"] == 1.0


def test_time_limit_is_read_from_the_environment_record() -> None:
    assert summary.time_limit_from({"time_limit": 2}) == 2.0
    # the runner's record: the suite with its case groups
    suite = {"name": "x", "groups": [{"time_limit": 10.0}, {"time_limit": 30.0}]}
    assert summary.time_limit_from({"suite": suite}) == 30.0
    assert summary.time_limit_from({"time_limit": "n/a"}) is None
    assert summary.time_limit_from({}) is None


def _row(**fields: object) -> dict[str, object]:
    base: dict[str, object] = {
        "run_id": "t", "suite": "deg", "family": "fam", "problem": "", "n": 5, "m": 3, "k": 0,
        "batch_size": 2, "dtype": "float64", "device": "cpu", "tolerance": "low", "tolerance_eps": 1e-3,
    }  # fmt: skip
    base["case_id"] = f"fam-B{fields.get('batch_size', 2)}"
    base.update(fields)
    return base


def _build(tmp_path: Path, rows: list[dict[str, object]], environment: dict[str, object] | None = None) -> str:
    results = tmp_path / "results"
    for row in rows:
        write_row(results, row)
    if environment is not None:
        write_environment(results, environment)
    path = build_report(results)  # default out_dir: results/report
    assert path == results / "report" / "report.md"
    assert (results / "report" / "report.html").exists()
    for link in re.findall(r"\((plots/[^)]+\.png)\)", path.read_text(encoding="utf-8")):
        assert (path.parent / link).exists()
    return path.read_text(encoding="utf-8")


def test_empty_table_does_not_crash(tmp_path: Path) -> None:
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "results.jsonl").write_text("")
    text = _build(tmp_path, [], {"suite": "deg"})
    assert "The results table has no rows: nothing was measured." in text
    assert "# qpbench report: deg" in text


def test_only_unsupported_rows(tmp_path: Path) -> None:
    rows = [
        _row(solver="a", outcome="unsupported", error="needs a GPU"),
        _row(solver="b", outcome="unavailable", error="not installed"),
    ]
    text = _build(tmp_path, rows)
    assert "No environment.json was found beside the results table." in text
    # A case no solver ran compares nobody: no numbers, one line saying why
    title = "Success rate — suite deg, tolerance low (0.001) (every solver over the same 0 cases)"
    assert markdown_table(text, title) == [
        ["a", "0", "1 unsupported", "—", "—", "—", "—", "—", "—", "—"],
        ["b", "0", "1 unavailable", "—", "—", "—", "—", "—", "—", "—"],
    ]
    assert "No generated batches were run" in text
    assert markdown_table(text, "Not run: unsupported, unavailable or skipped (0 rows)") == []
    assert ("Cases no solver ran, left out of every comparison: 1 cases (cpu): needs a GPU; 1 cases (cpu): "
            "not installed.") in text


def test_single_solver_single_batch_size_and_no_reference_partner(tmp_path: Path) -> None:
    rows = [
        _row(solver="solo", outcome="ok", solve_time_median=0.5, solve_time_min=0.4, solve_time_max=0.7,
             n_success=2, n_solved=2, primal_res_max=0.0, dual_res_max=0.0, gap_max=0.0),
    ]  # fmt: skip
    # the runner's record: the suite with its case groups, no top-level time limit
    groups = [{"family": "fam", "sizes": [[5, 3, 0]], "batch_sizes": [2], "problems": None, "time_limit": 7.0}]
    text = _build(tmp_path, rows, {"suite": {"name": "deg", "groups": groups}})
    assert markdown_table(text, "Suite case groups (environment.json)") == [["fam", "(5, 3, 0)", "2", "7.0"]]
    # no "inhouse" in the table: the first solver is the reference
    assert "speed-ups are against `solo`." in text
    assert "plots/time-deg-fam-n5-m3-k0-float64-cpu-low.png" in text
    title = (
        "Failure-penalized shifted geometric mean of solve time — suite deg, tolerance low (0.001) "
        "(1.0 = best; shift 5.00e-02 s; a failed or not-run case counts 7.00e+00 s, time limit)"
    )
    assert markdown_table(text, title) == [["solo", "1.00", "5.00e-01", "5.00e-01", "5.00e-01", "5.00e-01", "1 of 1"]]


def test_several_seeds_are_listed_apart_and_merged_in_plots(tmp_path: Path) -> None:
    def timed(solver: str, seed: int, time: float) -> dict[str, object]:
        return _row(solver=solver, seed=seed, case_id=f"fam-B2-s{seed}", outcome="ok", solve_time_median=time,
                    solve_time_min=time, solve_time_max=time, n_success=2, n_solved=2)  # fmt: skip

    rows = [timed("inhouse", 0, 0.01), timed("inhouse", 1, 0.03), timed("other", 0, 0.02), timed("other", 1, 0.03)]
    text = _build(tmp_path, rows)
    batch = markdown_table(text, "Batch times — fam n=5 m=3 k=0, float64 on cpu, tolerance low, suite deg")
    # speed-up against the reference on the same seed: 0.01/0.02 and 0.03/0.03
    assert [(row[0], row[2], row[-1]) for row in batch] == [
        ("inhouse", "0", "1.00"),
        ("inhouse", "1", "1.00"),
        ("other", "0", "0.50"),
        ("other", "1", "1.00"),
    ]
    assert "plots/speedup-deg-fam-n5-m3-k0-float64-cpu-low.png" in text
    # the plots show one point per (solver, B): the median over seeds of their median times
    merged = plots.per_batch_size(summary.prepare(pd.DataFrame(rows)))
    assert merged[["solver", "batch_size", "solve_time_median", "row_ok"]].values.tolist() == [
        ["inhouse", 2.0, pytest.approx(0.02), True],
        ["other", 2.0, pytest.approx(0.025), True],
    ]


def test_test_set_problems_get_a_table_per_tolerance(tmp_path: Path) -> None:
    def problem(name: str, solver: str, outcome: str, **fields: object) -> dict[str, object]:
        return _row(family="maros_meszaros", problem=name, case_id=name, batch_size=1, solver=solver,
                    outcome=outcome, **fields)  # fmt: skip

    rows = [
        problem("HS21", "a", "ok", solve_time_median=1e-3, n_success=1, n_solved=1),
        problem("HS21", "b", "ok", solve_time_median=2e-3, n_success=0, n_solved=1),  # wrong answer
        problem("HS21", "c", "timeout", error="no progress"),
        problem("QPTEST", "a", "failed", error="ValueError: singular"),
        problem("QPTEST", "b", "ok", solve_time_median=3e-3, n_success=1, n_solved=1),
    ]
    text = _build(tmp_path, rows)
    title = "Solve time per problem — maros_meszaros, float64 on cpu, tolerance low, suite deg"
    assert markdown_table(text, title) == [
        ["HS21", "n=5 m=3 k=0", "1", "1.00e-03", "2.00e-03\\*", "timeout"],
        ["QPTEST", "n=5 m=3 k=0", "1", "failed", "3.00e-03", "—"],
    ]
    assert "No generated batches were run" in text  # test-set rows get no batch-size plots


def test_expected_infeasible_batches_count_detection_as_success() -> None:
    frame = load_table(FIXTURE).iloc[:0]
    rows = pd.DataFrame(
        [
            _row(solver="a", outcome="ok", expected_status="primal_infeasible", n_success=0, n_expected_status=2),
            _row(solver="b", outcome="ok", expected_status="primal_infeasible", n_success=0, n_expected_status=1),
        ]
    )
    prepared = summary.prepare(pd.concat([frame, rows], ignore_index=True))
    assert prepared["problems_ok"].tolist() == [2.0, 1.0]
    assert prepared["row_ok"].tolist() == [True, False]


def test_cli_report_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cli"
    assert cli_main(["report", str(FIXTURE), "-o", str(out), "--reference", "osqp"]) == 0
    assert (out / "report.md").exists() and (out / "report.html").exists()
    assert f"wrote {out / 'report.md'}" in capsys.readouterr().out
    text = (out / "report.md").read_text(encoding="utf-8")
    batch = markdown_table(text, "Batch times — optnet_random n=10 m=5 k=0, float64 on cpu, tolerance mid, suite unit")
    # osqp is the reference now: inhouse is 4/2 = 2x and 10/4 = 2.5x faster
    assert [row[-1] for row in batch[:4]] == ["2.00", "2.50", "1.00", "1.00"]
    assert "speed-ups are against `osqp`." in text
    assert cli_main(["report", str(FIXTURE), "-o", str(out), "--reference", "nope"]) == 2
    assert "reference solver 'nope'" in capsys.readouterr().err
    assert cli_main(["report", str(tmp_path / "missing")]) == 2
    with pytest.raises(ValueError, match="reference"):
        build_report(FIXTURE, tmp_path / "bad", reference="nope")


# ----------------------------------------------------------------------------- the first screen, layout, plots
def test_the_report_leads_with_the_answer(mixed_report: tuple[Path, str]) -> None:
    _, text = mixed_report
    lines = text.splitlines()
    h2 = [line for line in lines if line.startswith("## ")]
    assert h2[0] == "## Fastest solver per problem size and batch size" and h2[1] == "## Contents"
    assert h2[-3:] == ["## Definitions", "## What was run", "## Machine and versions"]
    title = "Fastest per batch size — optnet_random n=10 m=5 k=0, float64 on cpu, tolerance mid"
    assert lines.index(f"**{title}**") < lines.index("## Contents")
    # B = 1: inhouse 2 ms, osqp 4 ms; B = 4: inhouse 1 ms per problem, osqp 2.5 ms but 3/4 only
    assert markdown_table(text, title) == [
        ["1", "inhouse", "2.00e-03", "1/1", "the same", "2.00e-03", "1/1", "1.00", "2 of 2"],
        ["4", "inhouse", "1.00e-03", "4/4", "the same", "1.00e-03", "4/4", "1.00", "1 of 2"],
    ]
    # high: the only answers were wrong, and the table says so rather than naming a winner
    high = "Fastest per batch size — optnet_random n=10 m=5 k=0, float64 on cpu, tolerance high"
    assert markdown_table(text, high) == [["1", "inhouse", "3.00e-03", "0/1", "none", "3.00e-03", "0/1", "1.00",
                                           "0 of 2"]]  # fmt: skip
    failed = markdown_table(text, "Solvers that failed problems (all cases; details in Failures)")
    assert failed == [
        ["inhouse", "1/8", "primal 1", "answers reported solved, outside the tolerance"],
        ["osqp", "2/6", "status 2", "max_iter 2"],
        ["broken", "7/7", "failed 1, timeout 4, crashed 2",
         "RuntimeError: boom; exceeded the time limit of 1.0 s; worker died (signal 11, SIGSEGV)"],
    ]  # fmt: skip
    assert lines.index("**Solvers that failed problems (all cases; details in Failures)**") < lines.index("## Contents")


def test_fastest_solving_every_problem_is_named_when_the_fastest_failed(tmp_path: Path) -> None:
    def timed(solver: str, time: float, success: int) -> dict[str, object]:
        return _row(solver=solver, outcome="ok", batch_size=4, solve_time_median=time, n_success=success, n_solved=4)

    text = _build(tmp_path, [timed("inhouse", 0.04, 4), timed("quick", 0.01, 3), timed("sure", 0.02, 4)])
    assert markdown_table(text, "Fastest per batch size — fam n=5 m=3 k=0, float64 on cpu, tolerance low") == [
        ["4", "quick", "2.50e-03", "3/4", "sure (5.00e-03)", "1.00e-02", "4/4", "2.00", "2 of 3"],
    ]


def test_contents_link_to_the_headings_in_markdown_and_html(mixed_report: tuple[Path, str]) -> None:
    path, text = mixed_report
    links = re.findall(r"^\s*\* \[[^\]]+\]\(#([^)]+)\)$", text, flags=re.MULTILINE)
    assert "summary-per-suite-and-tolerance-level" in links and "machine-and-versions" in links
    assert "suite-unit-tolerance-mid-1e-06" in links  # GitHub's rule: punctuation dropped, spaces to hyphens
    html = (path.parent / "report.html").read_text(encoding="utf-8")
    ids = set(re.findall(r'<h[1-6] id="([^"]+)"', html))
    assert set(links) <= ids
    assert all(f'href="#{anchor}"' in html for anchor in links)


def test_html_tables_scroll_in_their_own_box(mixed_report: tuple[Path, str]) -> None:
    path, _ = mixed_report
    html = (path.parent / "report.html").read_text(encoding="utf-8")
    assert html.count('<div class="table"><table>') == html.count("<table>")
    assert ".table { overflow-x: auto;" in html


def test_not_run_cases_are_shown_and_kept_in_the_denominators(tmp_path: Path) -> None:
    def ok(solver: str, case: str, time: float, batch: int = 2, **extra: object) -> dict[str, object]:
        return _row(solver=solver, case_id=case, batch_size=batch, outcome="ok", solve_time_median=time,
                    n_success=batch, n_solved=batch, **extra)  # fmt: skip

    cuda = {"device": "cuda", "outcome": "unsupported", "error": "no CUDA device on this machine"}
    rows = [
        ok("inhouse", "c1", 0.01), ok("inhouse", "c2", 0.02, batch=4),
        ok("lonely", "c1", 0.02),  # no row for c2: the suite left it out there
        _row(solver="inhouse", case_id="g1", **cuda), _row(solver="lonely", case_id="g1", **cuda),
        ok("zonly", "c1", 0.03, multipliers="recovered"), ok("zonly", "c2", 0.03, batch=4, multipliers="recovered"),
        _row(solver="gurobi", case_id="c1", outcome="ok", solve_time_median=0.05, n_success=2, n_solved=2,
             solver_version="13.0.3 (size-limited licence)"),
        _row(solver="gurobi", case_id="c2", batch_size=4, outcome="unsupported", error="too big"),
    ]  # fmt: skip
    text = _build(tmp_path, rows, {"suite": "deg", "time_limit": 1.0})
    assert "Restricted licence: gurobi 13.0.3 (size-limited licence)." in text
    # the CUDA case: one line, and in no denominator
    assert "Cases no solver ran, left out of every comparison: 1 cases (cuda): no CUDA device on this machine." \
        in text
    assert "no CUDA device" not in "\n".join(line for line in text.splitlines() if line.startswith("|"))
    title = "Success rate — suite deg, tolerance low (0.001) (every solver over the same 2 cases)"
    success = markdown_table(text, title)
    assert success == [
        ["inhouse", "2", "0", "6", "6", "0", "100.0%", "100.0%", "—", "—"],
        ["lonely", "1", "1 skipped", "6", "2", "0", "33.3%", "100.0%", "—", "—"],
        ["zonly", "2", "0", "6", "6", "0", "100.0%", "100.0%", "—", "recovered"],
        ["gurobi", "1", "1 unsupported", "6", "2", "0", "33.3%", "100.0%", "—", "—"],
    ]
    geo = markdown_table(text, "Failure-penalized shifted geometric mean of solve time — suite deg, tolerance low "
                               "(0.001) (1.0 = best; shift 2.50e-03 s; a failed or not-run case counts 1.00e+00 s, "
                               "time limit)")  # fmt: skip
    assert [(r[0], r[-1]) for r in geo] == [("inhouse", "2 of 2"), ("lonely", "1 of 2"), ("zonly", "2 of 2"),
                                            ("gurobi", "1 of 2")]  # fmt: skip
    not_run = markdown_table(text, "Not run: unsupported, unavailable or skipped (2 rows)")
    assert not_run == [["skipped", "not selected for this case by the suite", "lonely", "1"],
                       ["unsupported", "too big", "gurobi", "1"]]  # fmt: skip


def test_solver_options_from_the_environment_record_are_listed_at_the_end(tmp_path: Path) -> None:
    row = _row(solver="osqp", outcome="ok", solve_time_median=0.01, n_success=2, n_solved=2)
    options = {"osqp": [{"tolerance": "low", "time_limit": 10.0, "options": {"eps_abs": 1e-3, "polishing": True}}],
               "bad": [{"error": "ValueError: nope"}]}  # fmt: skip
    text = _build(tmp_path, [row], {"suite": "deg", "solver_options": options})
    title = "Solver options each solver ran with (environment.json, solver_options)"
    assert markdown_table(text, title) == [["osqp", "low", "10", "eps_abs=0.001, polishing=True"],
                                           ["bad", "", "", "could not be read: ValueError: nope"]]  # fmt: skip
    assert "solver_options" not in dict(markdown_table(text, "Machine and versions (environment.json)"))


def test_plot_style_gives_every_solver_its_own_look() -> None:
    names = ("inhouse", *(f"s{i}" for i in range(30)))
    style = plots.SolverStyle(names)
    assert style.color("inhouse") == "#000000"
    looks = [(style.color(s), style.marker(s)) for s in names]
    assert len(set(looks)) == len(names)  # colour and marker together: never the same twice
    assert len({style.color(s) for s in names[:25]}) == 25  # the first 24 others and inhouse: own colours
    strong, quiet = style.line("s1", True), style.line("s1", False)
    assert strong["linewidth"] > quiet["linewidth"] and strong["alpha"] > quiet["alpha"]
    assert plots.strong_set("s3") == {"inhouse", "s3"}
