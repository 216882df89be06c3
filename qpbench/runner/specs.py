"""``module:name`` specs: objects a suite names by import path (user adapters, generators).

The module is looked up on ``sys.path`` and then in the working directory, as ``python -m``
would find it, so ``qpbench run --solvers myadapters:MySolver`` works from the folder that holds
``myadapters.py`` without setting PYTHONPATH. The working directory is appended, not prepended,
so a stray file there never shadows a package qpbench itself imports.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any


def import_object(spec: str, what: str) -> Any:
    """The object ``spec`` names; ValueError naming ``what`` (e.g. "solver") and the spec otherwise."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ValueError(f"{what} {spec!r}: expected 'module:name' (e.g. mymodule:MyThing)")
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.append(cwd)
        importlib.invalidate_caches()
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ValueError(
            f"{what} {spec!r} cannot be imported: {type(exc).__name__}: {exc} "
            f"(searched sys.path and the working directory {cwd})"
        ) from None
