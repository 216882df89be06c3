"""The paired regression check end to end: a baseline build of a commit, two measurement servers,
interleaved solves, and `qpbench compare` judging them (with a slowdown injected from outside)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from qpbench.paired.build import (
    BuildUnavailableError,
    prepare_baseline,
    recorded_commit,
    repository_root,
    resolve_commit,
)
from qpbench.paired.session import BuildCommand, InterleavedSession, ServerError
from qpbench.regression import compare_tables
from qpbench.results import load_environment, load_table, write_environment

REPO = Path(__file__).resolve().parents[1]
SLOWDOWN = REPO / "scripts" / "slowdown"

pytestmark = pytest.mark.skipif(
    subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True).returncode != 0,
    reason="needs a git checkout (the paired check builds a commit of it)",
)

TINY_SUITE = """
description = "paired gate test"
solvers = ["inhouse", "clarabel"]
tolerances = ["mid"]
batch_sizes = [4]
repeats = 3
warmups = 1
reference = false
threads = 1

[[cases]]
family = "optnet_random"
n = 8
m = 8
k = 0

[[cases]]
family = "random_eq"
n = 8
m = 6
k = 3
"""


@pytest.fixture(scope="module")
def suite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("suite") / "tiny.toml"
    path.write_text(TINY_SUITE, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def head_build(tmp_path_factory: pytest.TempPathFactory) -> BuildCommand:
    return prepare_baseline(repository_root(REPO), "HEAD", tmp_path_factory.mktemp("builds"))


def test_baseline_build_runs_the_commits_code_and_nothing_of_the_environment(head_build: BuildCommand) -> None:
    assert not set(head_build.env) & {"PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP"}
    probe = "import qpbench, torch; print(qpbench.__file__)"
    done = subprocess.run([str(head_build.python), "-c", probe], env=head_build.env, cwd=head_build.cwd,
                          capture_output=True, text=True, check=True)
    assert Path(done.stdout.strip()).resolve().is_relative_to(head_build.cwd.resolve())
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True, check=True)
    assert head_build.commit == head.stdout.strip()


def test_builds_are_reused_per_commit(head_build: BuildCommand) -> None:
    again = prepare_baseline(repository_root(REPO), head_build.commit or "HEAD", head_build.cwd.parents[1])
    assert again.python == head_build.python


def test_commits_that_cannot_be_built_say_why(tmp_path: Path) -> None:
    repo = repository_root(REPO)
    with pytest.raises(BuildUnavailableError, match="not in this clone"):
        resolve_commit(repo, "0" * 40)
    root = subprocess.run(["git", "-C", str(repo), "rev-list", "--max-parents=0", "HEAD"], capture_output=True,
                          text=True, check=True).stdout.split()[0]
    with pytest.raises(BuildUnavailableError, match="predates the paired measurement server"):
        prepare_baseline(repo, root, tmp_path)
    with pytest.raises(BuildUnavailableError, match="not in a git checkout"):
        repository_root(Path("/"))


def test_the_baselines_recorded_commit_is_ref_only_when_the_tree_was_clean(tmp_path: Path) -> None:
    write_environment(tmp_path, {"git": {"commit": "abc123", "dirty": False}})
    assert recorded_commit(tmp_path) == "abc123"
    write_environment(tmp_path, {"git": {"commit": "abc123", "dirty": True}})
    with pytest.raises(BuildUnavailableError, match="modified tree"):
        recorded_commit(tmp_path)
    write_environment(tmp_path, {"git": {"commit": None}})
    with pytest.raises(BuildUnavailableError, match="records no git commit"):
        recorded_commit(tmp_path)


def test_committed_baseline_names_a_clean_commit_of_this_history() -> None:
    """CI's REF: the committed baseline must be measured at a commit this clone has."""
    commit = recorded_commit(REPO / "reports" / "baseline" / "ci")
    assert resolve_commit(repository_root(REPO), commit) == commit


def test_a_session_pairs_every_solve_of_two_builds(head_build: BuildCommand, suite: Path, tmp_path: Path) -> None:
    twin = BuildCommand("candidate", head_build.python, head_build.cwd, head_build.env, head_build.commit)
    folders = {"baseline": tmp_path / "baseline", "candidate": tmp_path / "candidate"}
    with InterleavedSession(suite, ["inhouse"], [head_build, twin]) as session:
        assert [u.case_id.split("/")[0] for u in session.units] == ["optnet_random", "random_eq"]
        session.measure(pairs=9, rounds=2)
        session.write(folders)
    base, cand = load_table(folders["baseline"]), load_table(folders["candidate"])
    assert list(base["solver"]) == ["inhouse", "inhouse"]  # clarabel is not judged, so not timed
    assert [len(t) for t in base["solve_times"]] == [9, 9] == [len(t) for t in cand["solve_times"]]
    assert base["pairing"].nunique() == 1 and base["pairing"].iloc[0] == cand["pairing"].iloc[0]
    # one solver in two builds: every entry is a single solve, in both builds alike
    assert list(base["solves_per_time"]) == [1, 1] == list(cand["solves_per_time"])
    for column in ("work_iterations", "work_factorizations", "success_rate", "primal_res_max"):
        assert list(base[column]) == list(cand[column]), column  # the same code gives the same answers
    environment = load_environment(folders["baseline"])
    assert environment["git"]["commit"] == head_build.commit and environment["pairing"]["pairs"] == 9
    result = compare_tables(base, cand)
    assert result.mode == "paired"
    # Only the clock may differ between two processes of one build (on cases this small, by
    # +-20 % in a session of 9 pairs: a timing verdict here would be a coin toss, not a test).
    assert not [r for r in result.regressions if not r.metric.startswith("time_change")], result.render()


def test_a_build_that_cannot_start_or_serve_is_named(head_build: BuildCommand, suite: Path) -> None:
    absent = BuildCommand("candidate", head_build.cwd / "no-python", head_build.cwd, head_build.env, None)
    with pytest.raises(ServerError, match="candidate build: cannot start") as caught:
        InterleavedSession(suite, ["inhouse"], [head_build, absent]).start()
    assert caught.value.build == "candidate"
    twin = BuildCommand("candidate", head_build.python, head_build.cwd, head_build.env, head_build.commit)
    with pytest.raises(ServerError, match=r"baseline build: did not start.*does not exist"):
        InterleavedSession(suite.with_name("missing.toml"), ["inhouse"], [head_build, twin]).start()


def compare_command(args: list[str], tmp_path: Path, slowdown: str | None = None) -> tuple[int, dict]:
    """`qpbench compare ... --json` as CI runs it, optionally with the candidate slowed from outside."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "QPBENCH_TRIAL_SLOWDOWN")}
    if slowdown:
        env.update(PYTHONPATH=str(SLOWDOWN), QPBENCH_TRIAL_SLOWDOWN=slowdown)
    verdict = tmp_path / "verdict.json"
    done = subprocess.run([sys.executable, "-m", "qpbench", "compare", *args, "--json", str(verdict)], cwd=REPO,
                          env=env, capture_output=True, text=True, check=False)
    assert verdict.exists(), done.stdout + done.stderr
    return done.returncode, json.loads(verdict.read_text())


@pytest.mark.slow
def test_compare_against_a_commit_never_passes_a_tripled_solve(suite: Path, tmp_path: Path) -> None:
    """The gate as CI runs it, with the candidate slowed from outside (scripts/slowdown): three
    solves for one must never pass; unchanged code must read near 1x, with the same answers."""
    builds = tmp_path / "builds"
    common = ["--baseline-ref", "HEAD", "--suite", str(suite), "--pairs", "12", "--build-dir", str(builds)]
    out = tmp_path / "tables"
    slowed_code, slowed = compare_command([*common, "--out", str(out)], tmp_path, slowdown="resolve:2")
    assert slowed["mode"] == "paired"
    assert slowed_code in (1, 3) and slowed["verdict"] != "pass", slowed
    if slowed_code == 1:  # found by the clock alone, so found again by fresh measurement servers
        assert any(note.startswith("confirmation 1:") for note in slowed["notes"]), slowed["notes"]
        assert (out / "confirmation-1" / "candidate" / "results.jsonl").exists()
    assert slowed["aggregate"]["change"] > 1.5, slowed
    assert [r["metric"] for r in slowed["regressions"] if not r["metric"].startswith("time_change")] == []
    _, same = compare_command(common, tmp_path)
    assert 1 / 1.5 < same["aggregate"]["change"] < 1.5, same  # far from 3x even on these tiny, jumpy cases
    assert [r["metric"] for r in same["regressions"] if not r["metric"].startswith("time_change")] == []


@pytest.mark.slow
def test_compare_falls_back_to_unpaired_when_the_baseline_names_no_commit(suite: Path, tmp_path: Path) -> None:
    """A recorded baseline (as scripts/update_baseline.sh makes it) whose tree was modified cannot be
    built, so the check measures the suite interleaved with the baseline's reference solver."""
    baseline = tmp_path / "baseline"
    subprocess.run([sys.executable, "-m", "qpbench", "compare", "--record", str(baseline), "--suite", str(suite),
                    "--pairs", "10"], cwd=REPO, check=True, capture_output=True)
    table = load_table(baseline)
    assert sorted(table["solver"]) == ["clarabel", "clarabel", "inhouse", "inhouse"]
    assert table["pairing"].nunique() == 1 and (table["calibration_time"] > 0).all()
    record = load_environment(baseline)
    write_environment(baseline, {**record, "git": {"commit": record["git"]["commit"], "dirty": True}})
    code, verdict = compare_command([str(baseline), "--paired", "--suite", str(suite), "--pairs", "10"], tmp_path)
    assert verdict["mode"] == "unpaired" and code == {"pass": 0, "regression": 1, "inconclusive": 3}[verdict["verdict"]]
    assert any("no paired build" in note and "modified tree" in note for note in verdict["notes"]), verdict["notes"]
    speeds = [case["speed"] for case in verdict["cases"]]
    assert all(speed is not None for speed in speeds), verdict  # timed against the interleaved reference


def test_the_injected_slowdown_changes_only_the_clock() -> None:
    """The trials' wrapper (scripts/slowdown) returns the real solve's answer and work counts."""
    sys.path.insert(0, str(SLOWDOWN))
    try:
        from slowed_inhouse import Slowdown, SlowedInHouseAdapter
    finally:
        sys.path.remove(str(SLOWDOWN))
    from qpbench.adapters.base import Tolerance
    from qpbench.adapters.inhouse import InHouseAdapter
    from qpbench.generators import generate

    batch = generate("optnet_random", 3, 10, 10, 0, seed=2)
    plain = InHouseAdapter()
    expected = plain.solve(plain.setup(batch, Tolerance.parse("mid")))
    for text in ("resolve:1.5", "burn:0.1"):
        slowed = SlowedInHouseAdapter(Slowdown.parse(text))
        assert slowed.name == "inhouse"
        got = slowed.solve(slowed.setup(batch, Tolerance.parse("mid")))
        assert (got.z == expected.z).all() and got.info["work"] == expected.info["work"]
    for bad in ("resolve", "burn:-1", "sleep:1"):
        with pytest.raises(ValueError, match="QPBENCH_TRIAL_SLOWDOWN"):
            Slowdown.parse(bad)
