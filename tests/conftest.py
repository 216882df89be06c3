"""Shared fixtures: where the Maros–Mészáros data lives, and the benchmark scripts as modules.

Resolution: ``$QPBENCH_MAROS_MESZAROS_DIR``, else ``<repo>/../shared/data/maros_meszaros`` when
that folder exists. Without data the tests that need it are skipped locally, but fail when
the ``CI`` environment variable is set: in CI they must run, not skip.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[1]
DEFAULT_MAROS_MESZAROS_DIR = REPO.parent / "shared" / "data" / "maros_meszaros"


@pytest.fixture(scope="session")
def maros_meszaros_dir() -> Path:
    env = os.environ.get("QPBENCH_MAROS_MESZAROS_DIR")
    folder = Path(env) if env else DEFAULT_MAROS_MESZAROS_DIR
    if folder.is_dir() and any(folder.glob("*.mat")):
        return folder
    message = (
        f"Maros–Mészáros data not found at {folder} "
        "(set QPBENCH_MAROS_MESZAROS_DIR to the folder of .mat files)"
    )
    if os.environ.get("CI"):
        pytest.fail(message + "; in CI these tests must run, not skip", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def benchmark_script() -> Callable[[str], ModuleType]:
    """A loader of ``benchmarks/<name>.py`` as a module (the scripts are not a package)."""

    def load(name: str) -> ModuleType:
        spec = importlib.util.spec_from_file_location(f"{name}_script", REPO / "benchmarks" / f"{name}.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # dataclasses look their module up there
        spec.loader.exec_module(module)
        return module

    return load
