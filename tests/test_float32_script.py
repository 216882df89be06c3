"""benchmarks/float32.py: a small run prints one row per family and the totals, settings reach
the float32 solves, and bad options are refused with their name."""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType

import pytest

Loader = Callable[[str], ModuleType]


def _rows(text: str) -> dict[str, list[str]]:
    rows = [line.strip("|").split("|") for line in text.splitlines() if line.startswith("| ") and "---" not in line]
    return {cells[0].strip(): [c.strip() for c in cells[1:]] for cells in rows[1:]}


def test_a_small_run_reports_each_family_and_the_totals(
    benchmark_script: Loader, capsys: pytest.CaptureFixture[str]
) -> None:
    code = benchmark_script("float32").main(["--families", "box,svm", "--sizes", "6", "--seeds", "0", "--batch", "3"])
    assert code == 0
    rows = _rows(capsys.readouterr().out)
    assert sorted(rows) == ["all", "box", "svm"]
    assert rows["all"][0] == "6" and rows["box"][0] == rows["svm"][0] == "3"
    assert rows["all"][1] == "0", rows  # these families solve in float32 as in float64


def test_settings_reach_the_float32_solves(benchmark_script: Loader, capsys: pytest.CaptureFixture[str]) -> None:
    # One iteration cannot solve a box QP: every float32 status then differs from float64's.
    argv = ["--families", "box", "--sizes", "6", "--seeds", "0", "--batch", "3", "--setting", "max_iter=1"]
    code = benchmark_script("float32").main(argv)
    assert code == 0
    rows = _rows(capsys.readouterr().out)
    assert rows["box"][1] == "3" and rows["box"][4] == "1", rows


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["--families", "nope"], "--families"),
        (["--sizes", "a,b"], "--sizes"),
        (["--seeds", "-1"], "--seeds"),
        (["--batch", "0"], "--batch"),
        (["--setting", "reg_floor"], "--setting"),
        (["--setting", "not_a_setting=1"], "--setting"),
        (["--setting", "reg_floor=-1"], "--setting"),
    ],
)
def test_bad_options_are_refused_by_name(
    argv: list[str], named: str, benchmark_script: Loader, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        benchmark_script("float32").main(argv)
    assert exc.value.code == 2
    assert named in capsys.readouterr().err
