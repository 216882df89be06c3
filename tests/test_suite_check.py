"""The up-front check of a suite: every key and value, before anything runs (exit 2, naming the
file, the group and the key), and the one thread default of every suite."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from qpbench.cli import main as cli_main
from qpbench.runner import apply_overrides, load_suite, plan_run, run_suite
from qpbench.runner.execute import RunOptions
from qpbench.runner.suite import DEFAULT_THREADS, parse_suite, suite_names


def suite_file(tmp_path: Path, text: str, name: str = "mine.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


GOOD_TOP = 'solvers = ["osqp"]\nbatch_sizes = [2]\nrepeats = 1\nwarmups = 0\nreference = false\n'


@pytest.mark.parametrize(
    ("cases", "fragments"),
    [
        ('[[cases]]\nfamily = "boxx"\nn = 4\n', ["cases[0]: 'family'", "unknown family 'boxx'", "closest: box"]),
        ('[[cases]]\nfamilly = "box"\nn = 4\n', ["cases[0]", "unknown key 'familly'", "did you mean 'family'"]),
        (
            '[[cases]]\nfamily = "box"\nn = 4\n[[cases]]\nfamily = "random_eq"\nsizes = [[10, 10, 20]]\n',
            ["cases[1]: 'sizes'", "family 'random_eq' rejects (n=10, m=10, k=20)", "k = 20 is too large"],
        ),
        ('[[cases]]\nfamily = "box"\nn = 5\nm = 3\n', ["cases[0]: 'm'", "m follows from n (m = 10 for n = 5)"]),
        ('[[cases]]\nfamily = "lp"\nn = 5\nm = 3\n', ["cases[0]: 'm'", "lp family needs m >= 2n"]),
        ('[[cases]]\nfamily = "control"\nn = 2\n', ["cases[0]: 'n'", "family 'control' rejects (n=2)", "n >= 3"]),
        ('[[cases]]\nfamily = "nosuchmodule:gen"\nn = 3\n', ["cases[0]: 'family'", "cannot be imported"]),
        (
            '[[cases]]\nfamily = "box"\nn = 4\nsolvers = ["clarabell"]\n',
            ["cases[0]: 'solvers'", "unknown solver 'clarabell'", "closest: clarabel"],
        ),
        ('[[cases]]\nfamily = "box"\nn = 4\ndtypes = ["float16"]\n', ["cases[0]: 'dtypes' entry 'float16'"]),
        ('[[cases]]\nfamily = "box"\nn = 4\ndevices = ["tpu"]\n', ["cases[0]: 'devices' entry 'tpu'"]),
        ('[[cases]]\nfamily = "box"\nn = 4\ntolerances = ["max"]\n', ["cases[0]: 'tolerances' entry 'max'"]),
        ('[[cases]]\nfamily = "box"\nn = 4\nexclude_solvers = [3]\n', ["cases[0]: 'exclude_solvers' entries"]),
        # an infinite or huge limit overflowed the worker's wait (a traceback after the run had begun)
        ('[[cases]]\nfamily = "box"\nn = 4\ntime_limit = inf\n', ["cases[0]: 'time_limit'", "<= 1e+06, got inf"]),
        ('[[cases]]\nfamily = "box"\nn = 4\ntime_limit = 1e7\n', ["cases[0]: 'time_limit'", "got 10000000.0"]),
        (
            '[[cases]]\nfamily = "box"\nn = 4\nexclude_solvers = ["osq*"]\n',
            ["'solvers' (top level, used by cases[0]) = ['osqp'] selects no solver", "cases[0]: 'exclude_solvers'"],
        ),
    ],
)
def test_a_bad_value_stops_the_run_before_anything_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], cases: str, fragments: list[str]
) -> None:
    path = suite_file(tmp_path, GOOD_TOP + cases)
    out = tmp_path / "out"
    assert cli_main(["run", str(path), "--out", str(out), "--quiet", "--no-report", "--in-process"]) == 2
    err = capsys.readouterr().err
    assert f"suite {path}" in err, err
    for fragment in fragments:
        assert fragment in err, (fragment, err)
    assert not (out / "results.jsonl").exists() and not (out / "environment.json").exists()


def test_an_infinite_time_limit_on_the_command_line_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = suite_file(tmp_path, GOOD_TOP + '[[cases]]\nfamily = "box"\nn = 4\n')
    out = tmp_path / "out"
    assert cli_main(["run", str(path), "--out", str(out), "--time-limit", "inf", "--quiet", "--no-report"]) == 2
    assert "command line: 'time_limit' must be a number of seconds > 0 and <= 1e+06, got inf" in capsys.readouterr().err
    assert not out.exists()


def test_a_suite_file_that_is_not_utf8_is_named_in_the_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes((GOOD_TOP + '# caf\xe9\n[[cases]]\nfamily = "box"\nn = 4\n').encode("latin-1"))
    assert cli_main(["run", str(path), "--check"]) == 2
    assert f"suite {path}: not valid TOML" in capsys.readouterr().err


def test_solver_errors_say_where_the_name_came_from(tmp_path: Path) -> None:
    path = suite_file(tmp_path, 'solvers = ["osqqp"]\n[[cases]]\nfamily = "box"\nn = 4\n')
    with pytest.raises(ValueError, match=r"'solvers' \(top level, used by cases\[0\]\): unknown solver 'osqqp'; "
                                         r"closest: osqp"):  # fmt: skip
        plan_run(load_suite(path))
    suite = apply_overrides(load_suite(path), {"solvers": ["quadprogg"]})
    with pytest.raises(ValueError, match=r"^command line \('solvers'\): unknown solver 'quadprogg'; closest: quadprog"):
        plan_run(suite)


def test_test_set_problem_names_are_checked(tmp_path: Path, maros_meszaros_dir: Path, monkeypatch: Any) -> None:
    monkeypatch.setenv("QPBENCH_MAROS_MESZAROS_DIR", str(maros_meszaros_dir))
    path = suite_file(tmp_path, '[[cases]]\ntest_set = "maros_meszaros"\nproblems = ["HS21", "HS355"]\n')
    with pytest.raises(ValueError, match=r"cases\[0\]: 'problems': 'HS355' is not a problem of maros_meszaros.*HS35"):
        plan_run(load_suite(path))
    path.write_text('[[cases]]\ntest_set = "maros_meszaros"\nmax_n = 1\n')
    with pytest.raises(ValueError, match=r"cases\[0\]: max_n = 1 leaves no problem of maros_meszaros"):
        plan_run(load_suite(path))
    monkeypatch.delenv("QPBENCH_MAROS_MESZAROS_DIR")
    with pytest.raises(ValueError, match=r"cases\[0\]: 'test_set' = 'maros_meszaros': no Maros"):
        plan_run(load_suite(path))


def test_a_plan_resolves_each_groups_solvers(tmp_path: Path) -> None:
    text = (
        'solvers = ["osqp", "clarabel"]\n[[cases]]\nfamily = "box"\nn = 4\n'
        '[[cases]]\nfamily = "random_eq"\nn = 6\nexclude_solvers = ["clara*"]\n'
    )
    plan = plan_run(load_suite(suite_file(tmp_path, text)))
    names = {case.family: [ref.name for ref in plan.solvers_for(case)] for case in plan.cases}
    assert names == {"box": ["osqp", "clarabel"], "random_eq": ["osqp"]}
    assert plan.units == 3


def test_check_option_validates_and_lists_without_running(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = suite_file(tmp_path, GOOD_TOP + '[[cases]]\nfamily = "box"\nn = [4, 5]\n')
    out = tmp_path / "out"
    assert cli_main(["run", str(path), "--out", str(out), "--check"]) == 0
    text = capsys.readouterr().out
    assert "is valid: 2 cases, 2 rows" in text and "solvers: osqp" in text and "torch threads 1" in text
    assert not out.exists()


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        (["--executor", "dsak"], "--executor 'dsak'"),
        (["--workers", "2"], "--workers sets the size of the LocalCluster"),
    ],
)
def test_check_refuses_executor_settings_the_run_would_refuse(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], options: list[str], fragment: str
) -> None:
    path = suite_file(tmp_path, GOOD_TOP + '[[cases]]\nfamily = "box"\nn = 4\n')
    assert cli_main(["run", str(path), "--check", *options]) == 2  # 0, "is valid", before
    assert fragment in capsys.readouterr().err


def test_every_suite_pins_one_thread_unless_it_says_otherwise(tmp_path: Path) -> None:
    assert DEFAULT_THREADS == 1
    assert parse_suite({"cases": [{"family": "box", "n": 3}]}, name="s").threads == 1
    assert parse_suite({"threads": 0, "cases": [{"family": "box", "n": 3}]}, name="s").threads == 0
    for name in suite_names():
        assert load_suite(name).threads == 1, name


def test_a_bad_suite_writes_nothing_through_the_python_api_either(tmp_path: Path) -> None:
    path = suite_file(tmp_path, '[[cases]]\nfamily = "box"\nn = 4\nsolvers = ["nosuch"]\n')
    with pytest.raises(ValueError, match="unknown solver 'nosuch'"):
        run_suite(load_suite(path), RunOptions(out_dir=tmp_path / "out", quiet=True, in_process=True))
    assert not (tmp_path / "out").exists()


def test_suites_says_which_folder_holds_no_suite(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("QPBENCH_SUITES_DIR", str(tmp_path / "empty"))
    assert cli_main(["suites"]) == 1
    assert f"no suites found in {tmp_path / 'empty'}" in capsys.readouterr().out
