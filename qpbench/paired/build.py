"""The baseline build of the paired regression check: commit REF of this repository, runnable.

``prepare_baseline(repo, ref, cache)`` exports the commit's files (``git archive``: the checkout
and its ``.git`` are left untouched, whatever happens) and makes a virtual environment that
imports qpbench from that tree and every other package from the environment running the check.
So the two builds differ in qpbench's own code only: the same torch, the same Clarabel, the same
BLAS. That is what the paired check judges, the change in this repository's code. (A change of
the pinned libraries is not a code change of the solver; it shows in the unpaired comparison with
the committed baseline, whose ``environment.json`` records the versions.) Nothing is downloaded or
installed, so it works offline and takes seconds.

Where no such build is possible (no git, not a checkout, REF not in this clone, e.g. a shallow
clone, or REF older than the paired measurement server), :class:`BuildUnavailableError` says why, and
the caller falls back to the unpaired comparison. See ``docs/regression.md``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

from qpbench.paired.session import SERVER_MODULE, BuildCommand

SERVER_FILE = Path(*SERVER_MODULE.split(".")).with_suffix(".py")
READY_MARK = "build-ready"
PTH_NAME = "qpbench_baseline.pth"
# Variables that would put other code before the build's own (the working tree, a wrapper, a
# startup file): the baseline build must run REF's code and nothing else.
FOREIGN_VARIABLES = ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "PYTHONEXECUTABLE")


class BuildUnavailableError(Exception):
    """No baseline build of REF can be made here; the message says why."""


def git(repo: Path, *args: str) -> str:
    try:
        done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=False)
    except OSError as exc:
        raise BuildUnavailableError(f"git is not available ({exc})") from None
    if done.returncode != 0:
        raise BuildUnavailableError(f"git {' '.join(args)} failed: {done.stderr.strip() or done.returncode}")
    return done.stdout.strip()


def repository_root(start: Path) -> Path:
    try:
        return Path(git(start, "rev-parse", "--show-toplevel"))
    except BuildUnavailableError as exc:
        raise BuildUnavailableError(f"{start} is not in a git checkout ({exc})") from None


def resolve_commit(repo: Path, ref: str) -> str:
    """The full hash of ``ref``; BuildUnavailableError when this clone does not have it."""
    try:
        return git(repo, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
    except BuildUnavailableError:
        shallow = git(repo, "rev-parse", "--is-shallow-repository") == "true"
        hint = " (this is a shallow clone: fetch more history, e.g. git fetch --unshallow)" if shallow else ""
        raise BuildUnavailableError(f"commit {ref} is not in this clone{hint}") from None


def working_tree_state(repo: Path) -> tuple[str | None, bool | None]:
    """HEAD and whether tracked files differ from it (None, None outside a checkout)."""
    try:
        return git(repo, "rev-parse", "HEAD"), bool(git(repo, "status", "--porcelain", "--untracked-files=no"))
    except BuildUnavailableError:
        return None, None


def recorded_commit(baseline: Path | None) -> str:
    """The commit a committed baseline was measured at: its ``environment.json`` records it.

    That commit is REF, the baseline build of the paired check: the table and the build are then
    the same code, and REF moves only when the baseline is regenerated, the one deliberate act
    that accepts a change of the solver's speed or work (``docs/regression.md``).
    """
    from qpbench.results import load_environment

    if baseline is None:
        raise BuildUnavailableError("no baseline directory to read the commit from (give --baseline-ref)")
    git_record = load_environment(baseline).get("git") or {}
    commit = git_record.get("commit")
    if not commit:
        raise BuildUnavailableError(f"{baseline}/environment.json records no git commit")
    if git_record.get("dirty"):
        raise BuildUnavailableError(
            f"{baseline} was measured on a modified tree at {str(commit)[:12]}, so no commit holds its code "
            "(regenerate it from a clean checkout: scripts/update_baseline.sh)"
        )
    return str(commit)


def prepare_baseline(repo: Path, ref: str, cache: Path) -> BuildCommand:
    """A runnable build of ``ref`` under ``cache/<commit>`` (reused when already complete)."""
    commit = resolve_commit(repo, ref)
    root = Path(cache) / commit[:12]
    source, venv = root / "src", root / "venv"
    if not (root / READY_MARK).exists():
        shutil.rmtree(root, ignore_errors=True)
        source.mkdir(parents=True)
        export_tree(repo, commit, source)
        if not (source / SERVER_FILE).exists():
            raise BuildUnavailableError(
                f"commit {commit[:12]} predates the paired measurement server ({SERVER_FILE} is missing)"
            )
        make_environment(venv, source)
        (root / READY_MARK).write_text(commit + "\n")
    python = venv / "bin" / "python"
    check_imports(python, source)
    env = {k: v for k, v in os.environ.items() if k not in FOREIGN_VARIABLES}
    return BuildCommand("baseline", python, source, env, commit, False)


def export_tree(repo: Path, commit: str, into: Path) -> None:
    """The commit's files (``git archive``), without touching the repository's checkout."""
    with subprocess.Popen(["git", "-C", str(repo), "archive", "--format=tar", commit], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE) as proc:
        assert proc.stdout is not None
        with tarfile.open(fileobj=proc.stdout, mode="r|") as archive:
            archive.extractall(into, filter="data")
        error = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if proc.returncode != 0:
        raise BuildUnavailableError(f"git archive {commit[:12]} failed: {error.strip()}")


def borrowed_paths(own: set[str]) -> list[str]:
    """The running interpreter's import paths (its site-packages and what their ``.pth`` files
    added) that a new venv, whose own paths are ``own``, lacks."""
    paths = []
    for entry in sys.path:
        if entry and Path(entry).is_dir() and str(Path(entry).resolve()) not in own:
            paths.append(str(Path(entry).resolve()))
    return list(dict.fromkeys(paths))


def make_environment(venv: Path, source: Path) -> None:
    """A venv whose first import path is ``source``, then the running interpreter's package paths.

    They are listed as plain paths, so their ``.pth`` files (an editable install's finder among
    them) are not processed again; a working tree of qpbench among them comes after ``source``,
    so only ``source`` provides ``qpbench``, while torch and the solvers are the running ones.
    """
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, capture_output=True)
    probe = "import json, sys, sysconfig; print(json.dumps([sysconfig.get_paths()['purelib'], sys.path]))"
    answer = subprocess.run([str(venv / "bin" / "python"), "-c", probe], check=True, capture_output=True, text=True)
    purelib, own_paths = json.loads(answer.stdout)
    own = {str(Path(p).resolve()) for p in own_paths if p}
    paths = [str(source), *borrowed_paths(own)]
    (Path(purelib) / PTH_NAME).write_text("\n".join(paths) + "\n", encoding="utf-8")


def check_imports(python: Path, source: Path) -> None:
    """The build imports qpbench from ``source`` (not the working tree) and finds torch."""
    probe = "import qpbench, torch; print(qpbench.__file__)"
    env = {k: v for k, v in os.environ.items() if k not in FOREIGN_VARIABLES}
    done = subprocess.run([str(python), "-c", probe], capture_output=True, text=True, env=env, cwd=source,
                          check=False)
    if done.returncode != 0:
        raise BuildUnavailableError(f"the baseline build cannot import qpbench and torch: {done.stderr.strip()[-300:]}")
    found = Path(done.stdout.strip()).resolve()
    if source.resolve() not in found.parents:
        raise BuildUnavailableError(f"the baseline build imports qpbench from {found}, not from {source}")


def current_build(repo: Path | None) -> BuildCommand:
    """The environment running the check, as the candidate build (its environment kept as is)."""
    commit, dirty = working_tree_state(repo) if repo is not None else (None, None)
    return BuildCommand("candidate", Path(sys.executable), Path.cwd(), dict(os.environ), commit, dirty)
