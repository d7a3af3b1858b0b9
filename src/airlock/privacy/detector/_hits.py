"""The internal candidate type shared by the rule modules, and small context helpers."""

from __future__ import annotations

import bisect
import re
from typing import NamedTuple

__all__ = ["Hit", "near", "resolve_overlaps", "standalone"]


class Hit(NamedTuple):
    """A candidate entity before overlap resolution (offsets only, like Entity)."""

    type: str
    start: int
    end: int
    score: float


def near(
    pattern: re.Pattern[str], lower: str, start: int, end: int, before: int, after: int = 0
) -> bool:
    """True when ``pattern`` occurs in ``lower`` within a window around [start, end)."""
    return pattern.search(lower, max(0, start - before), min(len(lower), end + after)) is not None


def standalone(text: str, start: int, end: int) -> bool:
    """No letter, digit, ``_`` or ``-`` glued to either side of ``text[start:end]``.

    Patterns check this in Python rather than with a leading look-behind, because a
    pattern that starts with a look-behind (or ``\\b``) loses ``re``'s fast prefix scan.
    """
    if start > 0:
        c = text[start - 1]
        if c.isalnum() or c in "_-":
            return False
    if end < len(text):
        c = text[end]
        if c.isalnum() or c == "_":
            return False
        if c == "-" and end + 1 < len(text) and text[end + 1].isdigit():
            return False
    return True


def resolve_overlaps(hits: list[Hit]) -> list[Hit]:
    """Keep the best of overlapping candidates: higher score, then longer span, then earlier."""
    ranked = sorted(hits, key=lambda h: (-h.score, -(h.end - h.start), h.start))
    # Kept spans never overlap, so sorted by start they are also sorted by end: a new
    # span is free when it ends before the next kept start and starts after the previous end.
    starts: list[int] = []
    kept: list[Hit] = []
    for h in ranked:
        i = bisect.bisect_right(starts, h.start)
        if i > 0 and kept[i - 1].end > h.start:
            continue
        if i < len(kept) and kept[i].start < h.end:
            continue
        starts.insert(i, h.start)
        kept.insert(i, h)
    return kept
