"""Cutting text to a readable length, the one way every message and excerpt is cut."""

from __future__ import annotations

import re

__all__ = ["MAX_EXCERPT_CHARS", "excerpt", "shorten"]

MAX_EXCERPT_CHARS = 500
"""Bodies and server messages quoted in errors are cut to this many characters."""

_SPACES = re.compile(r"\s+")


def shorten(text: str, limit: int, *, one_line: bool = False) -> str:
    """`text` cut to at most `limit` characters, ending in ``…`` when cut.

    Args:
        text: What to cut.
        limit: The most characters to keep, the ellipsis included.
        one_line: Fold every run of whitespace (newlines included) into one space first.
    """
    if one_line:
        text = _SPACES.sub(" ", text).strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def excerpt(body: bytes | str, limit: int = MAX_EXCERPT_CHARS) -> str:
    """The start of a raw body as text, for an error to quote (invalid UTF-8 replaced)."""
    if isinstance(body, bytes):
        body = body[: limit * 4].decode("utf-8", errors="replace")
    return body[:limit]
