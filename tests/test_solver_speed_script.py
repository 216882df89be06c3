"""Smoke test of benchmarks/solver_speed.py: a tiny run writes the report with every section.

Timing is never asserted (the machine is shared); what is asserted is what a reader of the
report relies on: every case has the in-house result with its limit and iteration counts, the
ratios are computed from the same run, accuracy is checked, and the files are written.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

from qpbench.solver.compiled import compiler_missing


@pytest.fixture(scope="module")
def quick_run(
    tmp_path_factory: pytest.TempPathFactory, benchmark_script: Callable[[str], ModuleType]
) -> tuple[int, Path]:
    out = tmp_path_factory.mktemp("speed")
    code = benchmark_script("solver_speed").main([
        "--quick", "--threads", "1", "--batch-sizes", "1,3", "--n", "6", "--large", "8,2",
        "--solvers", "quadprog,daqp", "--repeats", "2", "--small-n", "5", "--compiled-batch-sizes", "3",
        "--out", str(out), "--name", "tiny",
    ])
    return code, out


def test_quick_run_writes_json_and_markdown(quick_run: tuple[int, Path]) -> None:
    code, out = quick_run
    assert code == 0
    data = json.loads((out / "tiny.json").read_text())
    env = data["environment"]
    assert env["torch_threads"] == [1] and env["cpu_cores"] >= 1
    assert env["libraries"]["torch"] and "commit" in env["git"]
    (run,) = data["runs"]
    assert run["threads"] == 1
    # smallest first: the small-n latency case, the main series, the large case
    assert [(c["n"], c["batch_size"]) for c in run["cases"]] == [(5, 1), (6, 1), (6, 3), (8, 2)]
    assert run["gemm_rate"]["flops_per_second"] > 0
    for case in run["cases"]:
        names = [r["solver"] for r in case["results"]]
        compiled = case["batch_size"] == 3
        assert names == ["inhouse", *(["inhouse-compiled"] if compiled else []), "quadprog", "daqp"]
        inhouse = case["results"][0]
        assert inhouse["kkt_form"] in ("reduced", "dual")
        assert inhouse["flops"] > 0
        assert inhouse["over_flop_bound"] == pytest.approx(inhouse["solve"]["median"] / inhouse["flop_bound"])
        assert inhouse["iterations_loop"] >= 1
        assert inhouse["limit"]["form"] == inhouse["kkt_form"]
        limit = inhouse["limit"]
        once = limit["once"] or 0.0
        assert (once > 0) == (inhouse["kkt_form"] == "dual")  # the dual form's K is formed once per solve
        assert limit["total"] == pytest.approx(once + limit["per_iteration"] * inhouse["iterations_loop"])
        assert inhouse["iteration_over_limit"] == pytest.approx(inhouse["solve"]["median"] / limit["total"])
        for r in (r for r in case["results"] if "skipped" not in r):
            s = r["solve"]
            assert 0 < s["min"] <= s["median"] <= s["max"] and 1 <= s["repeats"] <= 2
            assert s["page_faults"] is None or s["page_faults"] >= 0  # None only without POSIX resource
            assert r["accuracy"]["met"], r  # tiny well-posed problems: every solver reaches 1e-8
            assert r["statuses"] == {"solved": case["batch_size"]}
        quadprog = case["results"][names.index("quadprog")]
        assert case["ratios"]["quadprog"] == pytest.approx(quadprog["solve"]["median"] / inhouse["solve"]["median"])
        assert case["ratios"]["fastest_looped"] in ("quadprog", "daqp")
        if compiled and compiler_missing("cpu") is not None:  # recorded with the reason, not dropped
            assert case["results"][1]["skipped"] == compiler_missing("cpu")
        elif compiled:  # timed like the eager solver, with its compile time and the same ratios
            rec = case["results"][1]
            assert rec["compile_seconds"] > 0 and rec["iterations_loop"] >= 1
            assert rec["speedup_over_eager"] == pytest.approx(inhouse["solve"]["median"] / rec["solve"]["median"])
            paired = rec["paired_speedup"]
            assert paired["rounds"] == 2 and 0 < paired["min"] <= paired["median"] <= paired["max"]
            assert case["ratios"]["compiled"]["quadprog"] == pytest.approx(
                quadprog["solve"]["median"] / rec["solve"]["median"])
        else:
            assert "compiled" not in case["ratios"]
        # --quick pairs its largest main-series batch (no target case runs): the limit always,
        # qpth only where it ran (not asked for here).
        if (case["n"], case["batch_size"]) == (6, 3):
            pr = case["paired"]["limit"]
            assert set(case["paired"]) == {"limit"} and pr["rounds"] == 2
            assert 0 < pr["min"] <= pr["median"] <= pr["max"]
        else:
            assert "paired" not in case
    assert math.isfinite(run["backward"]["backward_over_forward"]) and run["backward"]["gradients_finite"]
    assert run["profile"]["torch_ops"] and run["profile"]["python_functions"]
    targets = {t["target"]: t for t in run["targets"]}
    assert targets["B=1, n=6 latency <= 5 ms"]["met"] in ("yes", "NO")
    assert targets["B=1, n=5 latency <= 2 ms"]["met"] in ("yes", "NO")
    assert targets["B=1, n=6 latency <= 5 ms, compiled"]["met"] == "n/a"  # B=1 not compiled in this run
    assert any(t["met"] == "n/a" for t in run["targets"])  # B=128 was not run: reported, not invented
    text = (out / "tiny.md").read_text()
    headings = ("## Solve times", "## Ratios and the factorization limit", "## Paired ratios", "## Compiled",
                "## Flop bound",
                "## Backward vs forward", "## Profile of one solve", "## Targets")
    for heading in headings:
        assert heading in text
    assert "| per problem ms | page faults | met 1e-8 |" in text
    # Every solve-times row has the header's cells, skipped solvers' rows included.
    table = text.split("## Solve times")[1].split("\n\n")[1].splitlines()
    assert len({row.count("|") for row in table}) == 1, table


def test_bad_arguments_are_rejected(benchmark_script: Callable[[str], ModuleType]) -> None:
    module = benchmark_script("solver_speed")
    with pytest.raises(ValueError, match="solvers"):
        module.parse_args(["--solvers", "nosuch"])
    with pytest.raises(ValueError, match="large"):
        module.parse_args(["--large", "500"])
    with pytest.raises(ValueError, match="paired-rounds"):
        module.parse_args(["--paired-rounds", "-1"])
    assert module.main(["--repeats", "0"]) == 2
