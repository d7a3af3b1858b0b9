"""Stop sequences over a token stream whose text arrives in arbitrary pieces.

A stop sequence may be split across tokens ("<|" then "end|>"), so text that could still
turn out to be the start of a stop sequence is held back until it either completes the
stop (and is dropped with everything after it) or can no longer match (and is released).
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["StopFilter"]


class StopFilter:
    """Feed text pieces; get back the text that is safe to emit."""

    def __init__(self, stops: Sequence[str]) -> None:
        self._stops = tuple(s for s in stops if s)
        self._held = ""
        self.stopped = False

    def feed(self, piece: str) -> str:
        """Text to emit now; once a stop matched, :attr:`stopped` is set and the rest dropped."""
        if self.stopped:
            return ""
        text = self._held + piece
        if not self._stops:
            self._held = ""
            return text
        cut = min((i for i in (text.find(s) for s in self._stops) if i >= 0), default=-1)
        if cut >= 0:
            self.stopped = True
            self._held = ""
            return text[:cut]
        keep = self._longest_stop_prefix_suffix(text)
        self._held = text[len(text) - keep :] if keep else ""
        return text[: len(text) - keep]

    def flush(self) -> str:
        """Release held-back text at the end of generation (it never completed a stop)."""
        held, self._held = self._held, ""
        return "" if self.stopped else held

    def _longest_stop_prefix_suffix(self, text: str) -> int:
        # Longest suffix of `text` that is a proper prefix of some stop sequence.
        best = 0
        for stop in self._stops:
            for n in range(min(len(stop) - 1, len(text)), best, -1):
                if text.endswith(stop[:n]):
                    best = n
                    break
        return best
