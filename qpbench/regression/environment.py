"""What differs between the two runs' machine records (``environment.json``)."""

from __future__ import annotations

from typing import Any


def environment_notes(baseline: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """Informational: in-run ratios (unpaired) and interleaved builds (paired) are there so that
    a different machine does not fail the check, but a reader of a verdict should know when the
    machines or libraries differ."""
    if not baseline or not current:
        return ["environment record missing in " + ("baseline" if not baseline else "current")]
    notes = []
    for field_name in ("cpu_model", "cpu_cores", "cpu_affinity", "torch_threads", "gpus", "python"):
        b, c = baseline.get(field_name), current.get(field_name)
        if b != c:
            notes.append(f"environment differs: {field_name} {b!r} -> {c!r}")
    b_libs, c_libs = baseline.get("libraries") or {}, current.get("libraries") or {}
    for lib in sorted(set(b_libs) | set(c_libs)):
        if b_libs.get(lib) != c_libs.get(lib):
            notes.append(f"environment differs: {lib} {b_libs.get(lib)} -> {c_libs.get(lib)}")
    b_git, c_git = baseline.get("git") or {}, current.get("git") or {}
    if b_git.get("commit") or c_git.get("commit"):
        notes.append(f"commits: baseline {_commit(b_git)}, current {_commit(c_git)}")
    return notes


def _commit(git: dict[str, Any]) -> str:
    commit = git.get("commit")
    return f"{commit} (modified tree)" if commit and git.get("dirty") else str(commit)
