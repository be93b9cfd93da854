"""Whole numbers written as text by users (JSON keys, environment variables)."""

from __future__ import annotations

import re

_DECIMAL = re.compile(r" *[0-9]+ *")


def ascii_decimal(text: str) -> int | None:
    """``text`` as a non-negative int if it is ASCII digits with optional spaces around them, else ``None``.

    ``str.isdigit()`` is not that test: it holds for "²" and "٣", which ``int()`` refuses or reads, and
    ``strip()`` removes characters such as "\\x1f" that ``int()`` does not accept.
    """
    return int(text) if _DECIMAL.fullmatch(text) else None
