"""The solver's large buffers: the same values as plain allocations, in huge pages where Linux
offers them, and the same solutions with the advice on and off."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from qpbench.generators import generate
from qpbench.solver import memory, solve

_THP_MODE = Path("/sys/kernel/mm/transparent_hugepage/enabled")


def _thp_mode() -> str | None:
    """The kernel's transparent huge page mode ("always", "madvise", "never"), None without one."""
    try:
        text = _THP_MODE.read_text()
    except OSError:
        return None
    return text[text.index("[") + 1 : text.index("]")]


def _huge_kb_at(address: int) -> int:
    """AnonHugePages (kB) of this process's mapping that holds ``address``."""
    inside = False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        head = line.split()[0]
        if "-" in head and ":" not in head:
            lo, hi = (int(x, 16) for x in head.split("-"))
            inside = lo <= address < hi
        elif inside and head == "AnonHugePages:":
            return int(line.split()[1])
    raise AssertionError(f"no mapping holds {address:#x}")


def _first_huge_page(t: torch.Tensor) -> int:
    return -(-t.data_ptr() // memory._HUGE_PAGE) * memory._HUGE_PAGE


@pytest.mark.parametrize("rows", [8, 600])  # below and above the size that gets the advice
def test_copies_and_gathered_rows_hold_the_values(rows: int) -> None:
    # Each matrix stored by columns, as torch's triangular solves return them: the gathered rows
    # keep that layout, which decides how BLAS reads them and so the rounding of products.
    t = torch.randn(rows, 100, 120, dtype=torch.float64).mT
    idx = torch.arange(0, rows, 3)
    gathered = memory.rows_of(t, idx)
    assert gathered.stride() == t[idx].stride() and torch.equal(gathered, t[idx])
    assert memory.empty_like(t).stride() == t.stride()
    copied = memory.copy_of(t)
    assert copied.is_contiguous() and torch.equal(copied, t)
    mask = torch.arange(rows) % 2 == 0
    assert torch.equal(memory.rows_of(t, mask), t[mask])


@pytest.mark.skipif(_thp_mode() not in ("madvise", "always"), reason="the kernel offers no transparent huge pages")
def test_a_large_buffer_is_backed_by_huge_pages_once_written() -> None:
    buf = memory.empty((64, 2**20), torch.zeros((), dtype=torch.float64))  # 512 MB
    buf.fill_(1.0)
    assert _huge_kb_at(_first_huge_page(buf)) > 0


@pytest.mark.skipif(_thp_mode() != "madvise", reason="huge pages are given only where asked for in 'madvise' mode")
def test_the_advice_can_be_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QPBENCH_HUGE_PAGES", "0")
    memory._madvise.cache_clear()
    try:
        buf = memory.empty((64, 2**20), torch.zeros((), dtype=torch.float64))
        buf.fill_(1.0)
        assert _huge_kb_at(_first_huge_page(buf)) == 0
    finally:
        monkeypatch.undo()
        memory._madvise.cache_clear()


def test_solutions_are_the_same_with_and_without_the_advice(monkeypatch: pytest.MonkeyPatch) -> None:
    # Small buffers get the advice here, so that a quick solve exercises every place that takes it.
    monkeypatch.setattr(memory, "_MIN_BYTES", memory._HUGE_PAGE)
    batch = generate("optnet_random", 96, n=60, m=60, seed=4)
    advised = solve(batch)
    monkeypatch.setenv("QPBENCH_HUGE_PAGES", "0")
    memory._madvise.cache_clear()
    try:
        plain = solve(batch)
    finally:
        monkeypatch.undo()
        memory._madvise.cache_clear()
    assert advised.info.groups[0].form == "dual" and advised.info.iterations_loop > 1
    assert torch.equal(advised.status, plain.status) and torch.equal(advised.iterations, plain.iterations)
    assert torch.equal(advised.z, plain.z)
