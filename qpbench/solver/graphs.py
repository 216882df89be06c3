"""Replaying one iteration of the fixed-shape mode as a CUDA graph.

A CUDA graph records the kernels one call launches and replays them without Python or launch
overhead, on the same memory. The iteration's code is functional (each step returns new tensors),
so the state lives in *static buffers*: the captured call reads them, and copies its results
back into them as its last kernels; replays then continue the iteration in place. Code that
runs between replays (the confirmation at a block's end) works on the buffers through the same
binding (``StateBuffers.absorb``).

Python runs only while capturing, so the work counters it keeps are advanced by the captured
iteration's share on every replay.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import torch

from qpbench.solver.result import WorkCounts
from qpbench.solver.state import tensor_fields


class StateBuffers:
    """The tensors of a working set's iterate, proximal state and track, as static buffers."""

    PARTS = ("it", "prox", "track")

    def __init__(self, ws: object) -> None:
        self.buffers = {part: {name: getattr(getattr(ws, part), name) for name in tensor_fields(getattr(ws, part))}
                        for part in self.PARTS}

    def absorb(self, ws: object) -> None:
        """Copy the working set's current tensors into the buffers and point it back at them."""
        for part in self.PARTS:
            state = getattr(ws, part)
            for name, buffer in self.buffers[part].items():
                value = getattr(state, name)
                if value is not buffer:
                    buffer.copy_(value)
            setattr(ws, part, replace(state, **self.buffers[part]))


class GraphIteration:
    """``step(ws)`` captured once as a CUDA graph; ``replay()`` runs it again on the buffers."""

    def __init__(self, ws: object, step: Callable[[], None], work: WorkCounts) -> None:
        self.ws, self.work = ws, work
        self.buffers = StateBuffers(ws)
        before = work.snapshot()
        # Warm up on a side stream (lazily allocated buffers, cuBLAS/cuSOLVER handles), as
        # torch.cuda.graph requires, then capture.
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            step()
            self.buffers.absorb(ws)
        torch.cuda.current_stream().wait_stream(side)
        self.per_replay = work.since(before)
        after_warmup = work.snapshot()
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            step()
            self.buffers.absorb(ws)
        work.reset_to(after_warmup)  # the capture itself computed nothing

    def replay(self) -> None:
        self.graph.replay()
        self.work.add_counts(self.per_replay)

