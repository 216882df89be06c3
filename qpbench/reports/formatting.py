"""Number formatting shared by every report table: fixed formats so two reports diff cleanly."""

from __future__ import annotations

import math
import re
from typing import Any

DASH = "—"  # a value that does not exist (no success, not measured)


def _missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        return math.isnan(float(value))
    except (TypeError, ValueError):
        return True


def sci(value: Any) -> str:
    """Seconds, residuals, errors: three significant digits, scientific."""
    return DASH if _missing(value) else f"{float(value):.2e}"


def ratio(value: Any) -> str:
    if _missing(value):
        return DASH
    return "inf" if math.isinf(float(value)) else f"{float(value):.2f}"


def percent(value: Any) -> str:
    return DASH if _missing(value) else f"{100.0 * float(value):.1f}%"


def integer(value: Any) -> str:
    return DASH if _missing(value) else str(int(float(value)))


def sizes(n: Any, m: Any, k: Any) -> str:
    return f"n={integer(n)} m={integer(m)} k={integer(k)}"


def slug(text: str) -> str:
    """A file-name-safe version of a label."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "plot"
