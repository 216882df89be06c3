"""The solver's large CPU buffers, backed by transparent huge pages where Linux offers them.

At large batches the solver's matrices are tens to hundreds of MB each (B = 1024, n = m = 100,
float64: 80 MB for K, 160 MB for [Q, G']), allocated anew by every solve and at every compaction
of the working set. glibc hands blocks this large back to the kernel when they are freed, so
each solve takes them again as fresh 4 KB pages, one page fault each (190,000 faults a solve at
B = 1024), and the iteration's passes over them miss the TLB page after page. Asking the kernel
for 2 MB pages for these buffers (``madvise(MADV_HUGEPAGE)``, honoured where transparent huge
pages are in "madvise" or "always" mode, a no-op where they are off) takes one fault per 2 MB
instead of per 4 KB, and a TLB entry covers 512 times more. The arithmetic is unchanged: the
buffers' addresses and alignment are the allocator's as before, only the pages behind them
differ.

Small tensors, other devices and compiled solves (where a call into libc would break the graph)
get ordinary allocations. Setting the environment variable ``QPBENCH_HUGE_PAGES=0`` turns the
advice off, for a process where the kernel's compaction of memory into huge pages costs more than
it saves (heavily fragmented memory).
"""

from __future__ import annotations

import ctypes
import functools
import os
import sys
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

_HUGE_PAGE = 2 * 2**20
# glibc serves a block from memory it already holds up to its largest mmap threshold (32 MB on
# 64-bit systems), so only blocks above it come as fresh pages every time. Advising smaller ones
# gained nothing measurable at B = 128 (10 to 20 MB buffers; solver_ab 1.028, spread 0.939 to 1.070).
_MIN_BYTES = 32 * 2**20
_MADV_HUGEPAGE = 14  # linux/mman.h


@functools.cache
def _madvise() -> Callable[[int, int, int], int] | None:
    """libc's madvise, or None where huge pages cannot be asked for (or are turned off)."""
    if not sys.platform.startswith("linux") or os.environ.get("QPBENCH_HUGE_PAGES", "1") == "0":
        return None
    try:
        fn = ctypes.CDLL(None, use_errno=True).madvise
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    fn.restype = ctypes.c_int
    return fn


def advise_huge_pages(t: Tensor) -> Tensor:
    """Ask for huge pages behind the whole 2 MB pages of ``t``'s memory, before it is first
    written; returns ``t``. Does nothing where it does not apply (see the module docstring)."""
    nbytes = t.numel() * t.element_size()
    if t.device.type != "cpu" or nbytes < _MIN_BYTES or torch.compiler.is_compiling():
        return t
    madvise = _madvise()
    if madvise is None:
        return t
    start = t.data_ptr()
    lo = -(-start // _HUGE_PAGE) * _HUGE_PAGE
    hi = (start + nbytes) // _HUGE_PAGE * _HUGE_PAGE
    # A refusal (a kernel without transparent huge pages) leaves ordinary pages: nothing to do.
    madvise(lo, hi - lo, _MADV_HUGEPAGE)
    return t


def empty(shape: Sequence[int], like: Tensor) -> Tensor:
    """An uninitialized tensor of ``like``'s dtype and device (``like.new_empty``), in huge pages
    where it is large."""
    return advise_huge_pages(like.new_empty(tuple(shape)))


def empty_like(t: Tensor) -> Tensor:
    """``torch.empty_like(t)``: the same shape and, where ``t`` is dense, the same strides, in
    huge pages where it is large. The layout matters beyond speed: a product's rounding depends
    on whether BLAS reads a matrix by rows or by columns."""
    return advise_huge_pages(torch.empty_like(t))


def copy_of(t: Tensor) -> Tensor:
    """A contiguous copy of ``t``, in huge pages where it is large."""
    return empty(t.shape, t).copy_(t)


def rows_of(t: Tensor, idx: Tensor) -> Tensor:
    """``t[idx]`` for indices ``idx`` (B',) along the first dimension, a new tensor laid out as
    ``t`` is (as indexing lays it out), in huge pages where it is large."""
    if torch.compiler.is_compiling() or idx.dtype == torch.bool or idx.shape[0] > t.shape[0]:
        return t[idx]
    return torch.index_select(t, 0, idx, out=empty_like(t[: idx.shape[0]]))
