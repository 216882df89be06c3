"""Worker process for :mod:`qpbench.adapters.parallel`: ``python -m qpbench.adapters._worker``.

Protocol: length-prefixed pickles. Requests on stdin: ("setup", base_name, arrays, tolerance,
time_limit) then any number of ("solve",); replies on the original stdout: ("ok", value) or
("error", message). Solver libraries print to the C-level stdout (OSQP does), so fd 1 is pointed
at stderr and replies go through a private duplicate of the original stdout.
"""

from __future__ import annotations

import os
import pickle
import struct
import sys
import traceback
from typing import Any, BinaryIO

_HEADER = struct.Struct("<Q")


def send(stream: BinaryIO, message: Any) -> None:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_HEADER.pack(len(data)))
    stream.write(data)
    stream.flush()


def receive(stream: BinaryIO) -> Any:
    header = stream.read(_HEADER.size)
    if len(header) < _HEADER.size:
        raise EOFError("worker pipe closed")
    (size,) = _HEADER.unpack(header)
    data = stream.read(size)
    if len(data) < size:
        raise EOFError("worker pipe closed mid-message")
    return pickle.loads(data)


def serve(requests: BinaryIO, replies: BinaryIO) -> None:
    import torch

    from qpbench.adapters.registry import get_adapter
    from qpbench.problem import QPBatch

    torch.set_num_threads(1)  # one core per worker: the wrapper's whole point
    adapter = prepared = None
    while True:
        try:
            request = receive(requests)
        except EOFError:
            return
        try:
            if request[0] == "setup":
                _, base_name, arrays, tolerance, time_limit = request
                chunk = QPBatch(**{k: torch.from_numpy(v) for k, v in arrays.items()}, check="none")
                adapter = get_adapter(base_name)
                prepared = adapter.setup(chunk, tolerance, time_limit)
                send(replies, ("ok", None))
            elif request[0] == "solve":
                if adapter is None:
                    raise RuntimeError("solve before setup")
                send(replies, ("ok", adapter.solve(prepared)))
            else:
                raise ValueError(f"unknown request {request[0]!r}")
        except Exception:
            send(replies, ("error", traceback.format_exc()))


def main() -> None:
    replies = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    serve(sys.stdin.buffer, replies)


if __name__ == "__main__":
    main()
