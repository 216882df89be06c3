"""Plugging in a solver as an outside user would: the example adapter of docs/adding-a-solver.md
run by `qpbench run` from the folder that holds it, adapters found through the
``qpbench.adapters`` entry-point group, and rows labelled with the adapter's own name."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from qpbench.adapters.registry import ENTRY_POINT_GROUP, adapter_names, all_adapters, get_adapter
from qpbench.results import read_rows
from qpbench.runner import RunOptions, load_suite, resolve_solvers, run_suite

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "docs" / "examples" / "scipy_adapter.py"

SUITE = """\
description = "an outside user's suite"
solvers = ["clarabel"]
batch_sizes = [3]
repeats = 1
reference = false

[[cases]]
family = "optnet_random"
n = 8
m = 8

[[cases]]
family = "random_eq"
sizes = [[8, 8, 4]]
"""


def qpbench_command(*args: str) -> list[str]:
    """The CLI without the working directory on sys.path (-P), as the installed `qpbench` script runs."""
    return [sys.executable, "-P", "-c", "from qpbench.cli import main; raise SystemExit(main())", *args]


def test_example_adapter_runs_through_qpbench_run_from_its_folder(tmp_path: Path) -> None:
    shutil.copy(EXAMPLE, tmp_path / "scipy_adapter.py")
    (tmp_path / "mysuite.toml").write_text(SUITE)
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    argv = qpbench_command("run", "mysuite.toml", "--solvers", "clarabel,scipy_adapter:ScipySLSQP", "--quiet",
                           "--no-report")  # fmt: skip
    done = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    rows = read_rows(tmp_path / "results" / "mysuite")
    assert sorted({row["solver"] for row in rows}) == ["clarabel", "scipy_slsqp"]  # the name, not the spec
    mine = [row for row in rows if row["solver"] == "scipy_slsqp"]
    assert len(mine) == 2 and all(row["worker"] == "subprocess" for row in mine)  # worker processes found it too
    for row in mine:
        assert row["outcome"] == "ok" and row["success_rate"] == 1.0, row
        assert row["dual_res_max"] <= 1e-6 and row["solver_version"]
    assert "scipy_slsqp" in done.stdout and "scipy_adapter:ScipySLSQP" not in done.stdout


def test_a_module_in_the_working_directory_is_found_without_pythonpath(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "cwd_adapters.py").write_text(EXAMPLE.read_text())
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    [ref] = resolve_solvers(["cwd_adapters:ScipySLSQP"])
    assert (ref.spec, ref.name) == ("cwd_adapters:ScipySLSQP", "scipy_slsqp")
    assert sys.path[-1] == str(tmp_path)  # appended: never shadows an installed package


def test_user_adapters_need_names_of_their_own(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "named.py").write_text(textwrap.dedent(
        """
        from docs_example import ScipySLSQP

        class Shadow(ScipySLSQP):
            name = "osqp"

        class First(ScipySLSQP):
            name = "dup"

        class Second(ScipySLSQP):
            name = "dup"

        class Nameless(ScipySLSQP):
            name = ""
        """
    ))  # fmt: skip
    shutil.copy(EXAMPLE, tmp_path / "docs_example.py")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ValueError, match="'named:Shadow' is named 'osqp', like an adapter qpbench ships"):
        resolve_solvers(["named:Shadow"])
    with pytest.raises(ValueError, match="'named:First' and 'named:Second' are both named 'dup'"):
        resolve_solvers(["named:First", "named:Second"])
    with pytest.raises(ValueError, match="'named:Nameless': the adapter has no 'name'"):
        resolve_solvers(["named:Nameless"])
    with pytest.raises(ValueError, match="'named:Missing' cannot be imported: AttributeError"):
        resolve_solvers(["named:Missing"])
    assert [r.name for r in resolve_solvers(["named:First", "osqp"], exclude=["du*"])] == ["osqp"]


def install_plugin(site: Path, monkeypatch: pytest.MonkeyPatch, entries: list[str]) -> None:
    """An installed distribution (a dist-info folder on sys.path) declaring adapters in the group."""
    site.mkdir()
    shutil.copy(EXAMPLE, site / "myplugin.py")
    info = site / "myplugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: myplugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\n" + "".join(f"{e}\n" for e in entries))
    monkeypatch.syspath_prepend(str(site))


@pytest.fixture
def plugin_site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    entries = ["scipy_slsqp = myplugin:ScipySLSQP", "broken = myplugin:NoSuchClass", "misnamed = myplugin:ScipySLSQP"]
    install_plugin(tmp_path / "site", monkeypatch, entries)
    return tmp_path / "site"


def test_a_plugin_never_replaces_a_shipped_adapter(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    install_plugin(tmp_path / "site", monkeypatch, ["osqp = myplugin:ScipySLSQP"])
    with pytest.warns(UserWarning, match="osqp = myplugin:ScipySLSQP .* is ignored: 'osqp' is a shipped adapter"):
        names = adapter_names()
    assert names.count("osqp") == 1
    with pytest.warns(UserWarning, match="is a shipped adapter"):
        assert type(get_adapter("osqp")).__name__ == "OSQPAdapter"


def test_entry_point_adapters_are_found_listed_and_run(plugin_site: Path, tmp_path: Path) -> None:
    assert {"scipy_slsqp", "broken", "misnamed"} <= set(adapter_names())
    plugin = get_adapter("scipy_slsqp")
    assert type(plugin).__name__ == "ScipySLSQP" and plugin.available
    by_name = {adapter.name: adapter for adapter in all_adapters()}
    ok, reason = by_name["broken"].availability()
    assert not ok and "entry point broken = myplugin:NoSuchClass" in reason and "AttributeError" in reason
    ok, reason = by_name["misnamed"].availability()
    assert not ok and "makes an adapter named 'scipy_slsqp'" in reason

    suite_path = tmp_path / "mysuite.toml"
    suite_path.write_text(SUITE.replace('["clarabel"]', '["scipy_slsqp", "broken"]'))
    out = tmp_path / "out"
    run_suite(load_suite(suite_path), RunOptions(out_dir=out, quiet=True, in_process=True))
    outcomes = {(row["solver"], row["outcome"]) for row in read_rows(out)}
    assert outcomes == {("scipy_slsqp", "ok"), ("broken", "unavailable")}


def test_solvers_command_lists_plugins(plugin_site: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from qpbench.cli import main

    assert main(["solvers", "--json"]) == 0
    rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    assert rows["scipy_slsqp"]["available"] and not rows["broken"]["available"]
