"""The machine record of a run (``environment.json``): what a reader needs to trust a number.

:func:`environment_record` builds one run's record; :mod:`qpbench.results` keeps one record per
run id in ``environment.json``. Two of its entries also go into every row: ``machine`` (the
hardware that measured it, which reports group rows by; on a Dask cluster each worker puts in
its own) and ``qpbench_commit`` (the code under test, part of what makes a row already done:
``docs/suite-format.md``, "Resuming").
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import platform
import subprocess
import sys
import uuid
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import torch

LIBRARIES = (
    "qpbench",
    "torch",
    "numpy",
    "scipy",
    "pandas",
    "cvxpy",
    "cvxpylayers",
    "diffcp",
    "qpth",
    "osqp",
    "clarabel",
    "scs",
    "ecos",
    "quadprog",
    "proxsuite",
    "piqp",
    "daqp",
    "highspy",
    "gurobipy",
)
REPO_ROOT = Path(__file__).resolve().parents[2]


def new_run_id() -> str:
    """Sortable and unique: UTC time plus a short random suffix."""
    return dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:6]


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def gpus() -> list[dict[str, Any]]:
    if not torch.cuda.is_available():
        return []
    out = []
    for i in range(torch.cuda.device_count()):
        props = torch.cuda.get_device_properties(i)
        out.append({"index": i, "name": props.name, "memory_bytes": int(props.total_memory)})
    return out


def library_versions() -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    for name in LIBRARIES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = None
    return found


def machine_fingerprint() -> str:
    """The hardware a timing depends on, readable: CPU model, logical cores, cores this process may
    use, GPUs. No host name: containers on the same hardware get new names."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    gpu_names = ", ".join(g["name"] for g in gpus()) or "no GPU"
    return f"{cpu_model()} | {os.cpu_count()} cores, {usable} usable | {gpu_names}"


def qpbench_checkout() -> Path | None:
    """The git checkout holding qpbench's source: beside the package (editable install), else the
    working directory when it is a qpbench checkout (a wheel install run from one, as tox does)."""
    for root in (REPO_ROOT, Path.cwd()):
        if (root / "qpbench" / "__init__.py").is_file() and (root / ".git").exists():
            return root
    return None


def qpbench_commit() -> str:
    """The code under test: HEAD of the qpbench checkout, plus a hash of the package's uncommitted
    changes (``<commit>+<hash>``); empty outside a checkout, where the version says it."""
    root = qpbench_checkout()
    if root is None:
        return ""
    commit = _git(root, "rev-parse", "HEAD")
    if not commit:
        return ""
    digest = hashlib.sha256((_git(root, "diff", "HEAD", "--binary", "--", "qpbench") or "").encode())
    untracked = (_git(root, "ls-files", "--others", "--exclude-standard", "--", "qpbench") or "").split()
    for name in sorted(untracked):  # a new module the code imports is a change too
        path = root / name
        digest.update(name.encode() + b"\0" + (path.read_bytes() if path.is_file() else b""))
    if digest.digest() == hashlib.sha256(b"").digest():
        return commit
    return f"{commit}+{digest.hexdigest()[:12]}"


def _git(root: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip()


def git_commit(root: Path | None = None) -> dict[str, Any]:
    """HEAD commit and whether the working tree had changes (None outside a git checkout).

    Without ``root``: the checkout beside the package (editable install), else the working
    directory (a wheel install run from a checkout, as tox does).
    """
    if root is None:
        for candidate in (REPO_ROOT, Path.cwd()):
            found = git_commit(candidate)
            if found["commit"]:
                return found
        return {"commit": None, "dirty": None}

    commit = _git(root, "rev-parse", "HEAD")
    status = _git(root, "status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": None if status is None else bool(status)}


def environment_record(run_id: str, suite: dict[str, Any], torch_threads: int, isolation: str) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "suite": suite,
        "cpu_model": cpu_model(),
        "cpu_cores": os.cpu_count(),
        "cpu_affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "gpus": gpus(),
        "machine": machine_fingerprint(),
        "cuda_available": torch.cuda.is_available(),
        "torch_threads": torch_threads,
        "isolation": isolation,
        "python": sys.version.split()[0],
        "os": platform.platform(),
        "libraries": library_versions(),
        "git": git_commit(),
        "qpbench_commit": qpbench_commit(),
        "solver_versions": {},
        "solver_options": solver_options(suite),
    }


def solver_options(suite: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Per solver the suite selects: its own options at each tolerance level and time limit used
    (``Adapter.options``, the one place the mapping lives); a solver that cannot be resolved
    records the error instead."""
    from qpbench.adapters.base import Tolerance
    from qpbench.runner.solvers import resolve_adapter, select_solvers

    settings: dict[str, list[tuple[str, float]]] = {}
    for group in suite.get("groups", []):
        for name in select_solvers(group.get("solvers", ()), group.get("exclude_solvers", ())):
            for tolerance in group.get("tolerances", ()):
                pairs = settings.setdefault(name, [])
                if (tolerance, group.get("time_limit")) not in pairs:
                    pairs.append((tolerance, group.get("time_limit")))
    record: dict[str, list[dict[str, Any]]] = {}
    for name, pairs in settings.items():
        try:
            adapter = resolve_adapter(name)
            record[name] = [
                {"tolerance": tol, "time_limit": limit, "options": adapter.options(Tolerance.parse(tol), limit)}
                for tol, limit in pairs
            ]
        except Exception as exc:  # the record must not stop a run; the runner reports bad names itself
            record[name] = [{"error": f"{type(exc).__name__}: {exc}"}]
    return record
