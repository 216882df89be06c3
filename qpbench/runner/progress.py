"""Progress on stderr: a tqdm bar over (case, solver, tolerance) units with the current one and ETA."""

from __future__ import annotations

import sys
from typing import Any


class Progress:
    def __init__(self, total: int, quiet: bool = False) -> None:
        self._bar: Any = None
        if not quiet:
            from tqdm import tqdm

            self._bar = tqdm(total=total, unit="row", file=sys.stderr, dynamic_ncols=True, leave=True)

    def describe(self, text: str) -> None:
        if self._bar is not None:
            self._bar.set_postfix_str(text, refresh=True)

    def advance(self, count: int) -> None:
        if self._bar is not None and count:
            self._bar.update(count)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
