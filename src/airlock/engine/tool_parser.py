"""Turn grammar-constrained tool-call text into streamed tool-call events.

Input is the model's text after the first ``<tool_call>\\n`` marker, in arbitrary pieces.
Because the grammar fixes the layout, a tiny state machine suffices: a header naming the
tool, the arguments object (streamed as it arrives), then the closing marker and either the
end or the next call.
"""

from __future__ import annotations

from collections.abc import Iterable

from airlock.engine.tool_format import (
    CALL_CLOSE,
    CALL_OPEN,
    CALL_SEPARATOR,
    call_header,
    new_call_id,
)
from airlock.engine.types import ToolCallArgumentsDelta, ToolCallStart

__all__ = ["ToolCallFormatError", "ToolCallParser"]

_TRAILER = "}" + CALL_CLOSE
_NEXT = _TRAILER + CALL_SEPARATOR + CALL_OPEN


class ToolCallFormatError(RuntimeError):
    """The text left the tool-call layout (a grammar bug, never the caller's fault)."""


class ToolCallParser:
    def __init__(self, names: Iterable[str]) -> None:
        self._headers = {call_header(n): n for n in names}
        self._state = "header"
        self._buf = ""
        self._index = -1
        self._depth = 0
        self._in_string = False
        self._escaped = False
        self.completed_calls = 0

    @property
    def started_calls(self) -> int:
        return self._index + 1

    def feed(self, text: str) -> list[ToolCallStart | ToolCallArgumentsDelta]:
        events: list[ToolCallStart | ToolCallArgumentsDelta] = []
        delta: list[str] = []
        for ch in text:
            if self._state == "header":
                self._buf += ch
                name = self._headers.get(self._buf)
                if name is not None:
                    self._index += 1
                    events.append(ToolCallStart(index=self._index, id=new_call_id(), name=name))
                    self._state, self._buf = "arguments", ""
                elif not any(h.startswith(self._buf) for h in self._headers):
                    raise ToolCallFormatError("unexpected text in a tool call header")
            elif self._state == "arguments":
                delta.append(ch)
                if self._scan(ch):
                    events.append(ToolCallArgumentsDelta(index=self._index, delta="".join(delta)))
                    delta.clear()
                    self._state, self._buf = "trailer", ""
            else:
                self._buf += ch
                if not _NEXT.startswith(self._buf):
                    raise ToolCallFormatError("unexpected text after tool call arguments")
                if self._buf == _TRAILER:
                    self.completed_calls += 1
                elif self._buf == _NEXT:
                    self._state, self._buf = "header", ""
        if delta:
            events.append(ToolCallArgumentsDelta(index=self._index, delta="".join(delta)))
        return events

    def _scan(self, ch: str) -> bool:
        """Track JSON nesting; true when the arguments object has just closed."""
        if self._in_string:
            if self._escaped:
                self._escaped = False
            elif ch == "\\":
                self._escaped = True
            elif ch == '"':
                self._in_string = False
            return False
        if ch == '"':
            self._in_string = True
        elif ch in "{[":
            self._depth += 1
        elif ch in "}]":
            self._depth -= 1
            return self._depth == 0
        return False
