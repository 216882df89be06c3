"""Running a step of the solver as a function compiled by ``torch.compile`` (``compile=True``).

Eager PyTorch pays a few microseconds of dispatch per tensor operation, and an iteration is
hundreds of small operations: at batch size 1 that overhead, not arithmetic, is the solve time.
Compiled (TorchInductor: the element-wise work fused into a few generated kernels, the
factorizations and triangular solves called as library kernels), an iteration costs a fraction
of that. The fixed-shape mode's steps are what compiles without breaks: no data-dependent
shapes and no host synchronization.

A step is compiled once per (function, shapes, dtype, device, form, settings) and reused by
later solves of the same in the process (TorchInductor also caches the generated code on disk, so a
new process recompiles faster). The first call with a new key runs eagerly instead, to count
its work: compiled code must not bake the work counters' values in (``WorkCounts.add`` skips
counting while tracing), so each compiled call adds the counts of that first, eager call.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

import torch

from qpbench.solver.result import WorkCounts

# Inductor checks the size and alignment of every buffer on every call; dynamo's guards have
# fixed the shapes already, so at batch size 1 the checks are pure overhead.
_OPTIONS = {"size_asserts": False, "alignment_asserts": False}

T = TypeVar("T")

# Each compiled function holds one entry per shape, dtype, form and phase; dynamo's default of 8
# entries per function would send a sweep over batch sizes back to eager code silently.
_RECOMPILE_LIMIT = 64

_compiled: dict[Callable[..., Any], Callable[..., Any]] = {}
_work_per_call: dict[tuple[Callable[..., Any], Hashable], WorkCounts] = {}


@functools.cache
def compiler_missing(device_type: str) -> str | None:
    """Why ``compile=True`` cannot run on this device type here, or None. On the CPU,
    TorchInductor builds its kernels with a C++ compiler."""
    if device_type != "cpu":
        return None
    from torch._inductor import cpp_builder

    try:
        cpp_builder.get_cpp_compiler()
    except Exception as exc:  # TorchInductor's own error type for a missing compiler
        return f"no C++ compiler for torch.compile's CPU kernels ({type(exc).__name__}: {exc})"
    return None


def require_compiler(device: torch.device) -> None:
    """Raise before compiling, with what to do, when ``compiler_missing`` says why it cannot."""
    why = compiler_missing(device.type)
    if why is not None:
        raise RuntimeError(f"compile=True cannot run on {device.type}: {why}; install one (g++) or use compile=False")


def compiled_version(fn: Callable[..., T]) -> Callable[..., T]:
    """The one compiled wrapper of ``fn`` in this process (created on first use), so that its
    compiled code is shared by every solve."""
    if fn not in _compiled:
        config = torch._dynamo.config
        config.recompile_limit = max(config.recompile_limit, _RECOMPILE_LIMIT)
        _compiled[fn] = torch.compile(fn, dynamic=False, fullgraph=True, options=_OPTIONS)
    return _compiled[fn]


def run_compiled(fn: Callable[..., T], key: Hashable, work: WorkCounts, *args: Any) -> T:
    """``fn(*args)``, compiled; ``key`` must tell apart every call whose work differs (shapes,
    form, which tests run). The first call with a new key runs eagerly and counts the work."""
    per_call = _work_per_call.get((fn, key))
    if per_call is None:
        before = work.snapshot()
        result = fn(*args)
        _work_per_call[(fn, key)] = work.since(before)
        return result
    result = compiled_version(fn)(*args)
    work.add_counts(per_call)
    return result
