"""Running a step of the solver as a function compiled by ``torch.compile`` (``compile=True``).

Eager PyTorch pays a few microseconds of dispatch per tensor operation, and an iteration is
hundreds of small operations: at batch size 1 that overhead, not arithmetic, is the solve time.
Compiled (TorchInductor: the element-wise work fused into a few generated kernels, the
factorizations and triangular solves called as library kernels), an iteration costs a fraction
of that. The fixed-shape mode's steps are what compiles without breaks: no data-dependent
shapes and no host synchronization.

All iterations run as one call (``run_compiled_loop``), those after the first as a
``while_loop``, which TorchInductor compiles into a loop of its own: the guards, the generated
code's wrapper and the state's round trip through Python are paid once a solve instead of once
an iteration.

A step is compiled once per (function, shapes, dtype, device, form, settings) and reused by
later solves of the same in the process (TorchInductor also caches the generated code on disk, so a
new process recompiles faster). The first call with a new key runs eagerly instead, to count
its work: compiled code must not bake the work counters' values in (``WorkCounts.add`` skips
counting while tracing), so each compiled call adds the counts of that first, eager call.
"""

from __future__ import annotations

import functools
import logging
import warnings
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
from torch._higher_order_ops import while_loop

from qpbench.solver.result import WorkCounts

# Inductor checks the size and alignment of every buffer on every call; dynamo's guards have
# fixed the shapes already, so at batch size 1 the checks are pure overhead.
_OPTIONS = {"size_asserts": False, "alignment_asserts": False}
# On the CPU the generated code's wrapper is C++ rather than Python: the compiled loop's body
# then runs without the interpreter (its ~90 buffer allocations and library calls an iteration
# were most of an iteration's time at batch size 1). Compiling takes longer.
_DEVICE_OPTIONS = {"cpu": {"cpp_wrapper": True}}


class _NoShimNotice(logging.Filter):
    """Drops TorchInductor's warning that the C++ wrapper reaches an operator (the Cholesky and
    triangular solves) through its generic fallback: expected here, and nothing a user can act on."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "missing a c-shim implementation" not in record.getMessage()

T = TypeVar("T")

# Each compiled function holds one entry per shape, dtype, form and phase; dynamo's default of 8
# entries per function would send a sweep over batch sizes back to eager code silently.
_RECOMPILE_LIMIT = 64

_compiled: dict[tuple[Callable[..., Any], str], Callable[..., Any]] = {}
_work_per_call: dict[tuple[Callable[..., Any], Hashable], WorkCounts] = {}
_loop_work: dict[tuple[Callable[..., Any], Hashable], LoopWork] = {}
_eager_loop_starts: list[WorkCounts] = []  # the work counted when an eager loop_while began

Carried = TypeVar("Carried")


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


def compiled_version(fn: Callable[..., T], device_type: str) -> Callable[..., T]:
    """The one compiled wrapper of ``fn`` for a device type in this process (created on first
    use), so that its compiled code is shared by every solve."""
    if (fn, device_type) not in _compiled:
        config = torch._dynamo.config
        config.recompile_limit = max(config.recompile_limit, _RECOMPILE_LIMIT)
        options = {**_OPTIONS, **_DEVICE_OPTIONS.get(device_type, {})}
        inductor_log = logging.getLogger("torch._inductor.ir")
        if not any(isinstance(f, _NoShimNotice) for f in inductor_log.filters):
            inductor_log.addFilter(_NoShimNotice())
        # TorchInductor's own lowering calls a helper torch has deprecated: a warning about
        # torch's code, printed at every first compile, that no user of this solver can act on.
        warnings.filterwarnings(
            "ignore", message=r"`torch\._prims_common\.check` is deprecated", category=FutureWarning,
            module=r"torch\._inductor\.lowering",
        )
        _compiled[fn, device_type] = torch.compile(fn, dynamic=False, fullgraph=True, options=options)
    return _compiled[fn, device_type]


def run_compiled(fn: Callable[..., T], key: Hashable, work: WorkCounts, device: torch.device, *args: Any) -> T:
    """``fn(*args)``, compiled for ``device``; ``key`` must tell apart every call whose work
    differs (shapes, form, which tests run). The first call with a new key runs eagerly and
    counts the work."""
    per_call = _work_per_call.get((fn, key))
    if per_call is None:
        before = work.snapshot()
        result = fn(*args)
        _work_per_call[(fn, key)] = work.since(before)
        return result
    result = compiled_version(fn, device.type)(*args)
    work.add_counts(per_call)
    return result


def loop_while(
    cond: Callable[[torch.Tensor, Carried], torch.Tensor],
    body: Callable[[torch.Tensor, Carried], tuple[torch.Tensor, Carried]],
    count: torch.Tensor,
    carried: Carried,
    work: WorkCounts,
) -> tuple[torch.Tensor, Carried]:
    """``while cond(count, carried): count, carried = body(count, carried)`` with a 0-d counter
    and a nested tuple of tensors. Traced by torch.compile it is one ``while_loop`` (``body``
    must then return new tensors, none of its inputs, and may not capture two tensors that share
    memory); run eagerly, a Python loop, which notes the work counted before it for
    ``run_compiled_loop``."""
    if torch.compiler.is_compiling():
        return while_loop(cond, body, (count, carried))  # type: ignore[return-value]
    _eager_loop_starts.append(work.snapshot())
    while bool(cond(count, carried)):
        count, carried = body(count, carried)
    return count, carried


@dataclass(frozen=True)
class LoopWork:
    """The work of a function around one ``loop_while``: before the loop, and each pass of it."""

    before: WorkCounts
    per_pass: WorkCounts


def run_compiled_loop(
    fn: Callable[..., tuple[torch.Tensor, T]], key: Hashable, start: int, work: WorkCounts, device: torch.device,
    *args: Any,
) -> tuple[int, T]:
    """``fn(*args)``, compiled for ``device``: a function that runs some steps, then one
    ``loop_while`` whose passes do equal work and whose counter starts at ``start``; it returns
    the final 0-d counter and its result, which this returns with the counter as an int (a
    synchronization). The first call with a new key runs eagerly and counts the work before the
    loop and of a pass (so a first call whose loop makes no pass does not compile: the next
    call counts again)."""
    known = _loop_work.get((fn, key))
    if known is None:
        before = work.snapshot()
        _eager_loop_starts.clear()
        counter, result = fn(*args)
        passes = int(counter) - start
        (loop_start,) = _eager_loop_starts  # the function runs exactly one loop
        if passes:
            per_pass = work.since(loop_start).divided(passes)
            _loop_work[(fn, key)] = LoopWork(loop_start.since(before), per_pass)
        return start + passes, result
    counter, result = compiled_version(fn, device.type)(*args)
    passes = int(counter) - start
    work.add_counts(known.before)
    work.add_counts(known.per_pass.times(passes))
    return start + passes, result
