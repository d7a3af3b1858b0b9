from __future__ import annotations

import json

import pytest

from airlock.engine.tool_format import CALL_CLOSE, CALL_OPEN, CALL_SEPARATOR, call_header
from airlock.engine.tool_parser import ToolCallFormatError, ToolCallParser
from airlock.engine.types import ToolCallArgumentsDelta, ToolCallStart

ARGS_A = '{"city": "Pa\\"ris}", "nested": {"list": [1, {"x": "]"}]}}'
ARGS_B = "{}"
# Text as the grammar produces it after the first marker.
TEXT = (
    call_header("get_weather")
    + ARGS_A
    + "}"
    + CALL_CLOSE
    + CALL_SEPARATOR
    + CALL_OPEN
    + call_header("noop")
    + ARGS_B
    + "}"
    + CALL_CLOSE
)


def _feed(
    parser: ToolCallParser, pieces: list[str]
) -> list[ToolCallStart | ToolCallArgumentsDelta]:
    events: list[ToolCallStart | ToolCallArgumentsDelta] = []
    for piece in pieces:
        events.extend(parser.feed(piece))
    return events


def _reassemble(events: list[ToolCallStart | ToolCallArgumentsDelta]) -> list[tuple[str, str]]:
    calls: dict[int, list[str]] = {}
    names: dict[int, str] = {}
    for event in events:
        if isinstance(event, ToolCallStart):
            names[event.index] = event.name
            calls[event.index] = []
        else:
            calls[event.index].append(event.delta)
    return [(names[i], "".join(calls[i])) for i in sorted(calls)]


@pytest.mark.parametrize("size", [1, 2, 3, 7, len(TEXT)])
def test_calls_reassemble_whatever_the_piece_size(size: int) -> None:
    parser = ToolCallParser(["get_weather", "noop"])
    events = _feed(parser, [TEXT[i : i + size] for i in range(0, len(TEXT), size)])
    assert _reassemble(events) == [("get_weather", ARGS_A), ("noop", ARGS_B)]
    assert json.loads(_reassemble(events)[0][1])["nested"]["list"][1] == {"x": "]"}
    assert parser.completed_calls == 2
    assert parser.started_calls == 2


def test_each_call_gets_a_fresh_openai_style_id() -> None:
    parser = ToolCallParser(["get_weather", "noop"])
    starts = [e for e in parser.feed(TEXT) if isinstance(e, ToolCallStart)]
    assert [s.index for s in starts] == [0, 1]
    ids = [s.id for s in starts]
    assert len(set(ids)) == 2
    for call_id in ids:
        assert call_id.startswith("call_")
        assert len(call_id) == 29
        assert call_id[5:].isalnum()


def test_arguments_stream_before_the_call_is_complete() -> None:
    parser = ToolCallParser(["get_weather"])
    events = parser.feed(call_header("get_weather") + '{"city": "Ro')
    assert isinstance(events[0], ToolCallStart)
    assert events[1] == ToolCallArgumentsDelta(index=0, delta='{"city": "Ro')
    assert parser.completed_calls == 0


def test_unknown_tool_name_is_rejected() -> None:
    parser = ToolCallParser(["get_weather"])
    with pytest.raises(ToolCallFormatError):
        parser.feed(call_header("delete_everything"))


def test_text_after_arguments_must_be_the_closing_marker() -> None:
    parser = ToolCallParser(["noop"])
    with pytest.raises(ToolCallFormatError):
        parser.feed(call_header("noop") + "{}} trailing words")
