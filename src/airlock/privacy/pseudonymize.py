"""The ``pseudonymize`` privacy mode: detected values leave as placeholders and come back restored.

A frontier route may be allowed for a sensitive request when its entity values are
replaced before the request leaves and put back into the answer on the way in:

>>> from airlock.privacy.detector import Detector
>>> from airlock.protocol.chat import ChatCompletionRequest
>>> msg = {"role": "user", "content": "SSN 536-22-1234"}
>>> req = ChatCompletionRequest(model="m", messages=[msg])
>>> safe, pseudonymizer = pseudonymize_request(req, Detector())
>>> safe.messages[0].content
'SSN <US_SSN_1>'
>>> pseudonymizer.restore("Your SSN is <US_SSN_1>.")
'Your SSN is 536-22-1234.'

Placeholders are ``<TYPE_N>``: numbered per type in order of first appearance, the
same value always gets the same placeholder within one request. When the request
already contains text shaped like such a placeholder (a user pasting ``<PERSON_1>``),
every placeholder of that request carries a random lower-case marker instead
(``<PERSON_1_qxkfm>``), so a literal from the prompt echoed by the model is never
mistaken for one of ours and "restored" to a value it never stood for.

The mapping lives only in the :class:`Pseudonymizer` of one request, in memory. It is
never logged, never shown by ``repr`` and never put in an error, and the object
refuses to be pickled or copied so it cannot end up in a cache, queue or file.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any, NoReturn

from airlock.privacy.detector import Detector, Entity
from airlock.protocol.chat import ChatCompletionRequest, TextPart
from airlock.protocol.responses import (
    ChatChunkChoice,
    ChatCompletion,
    ChatCompletionChunk,
    ChatDelta,
    ToolCallDelta,
    ToolCallFunctionDelta,
)

__all__ = [
    "Pseudonymizer",
    "Restorer",
    "StreamRestorer",
    "pseudonymize_request",
]

# The shape of a placeholder without its closing ``>``; a marker (if any) follows.
_SHAPE = r"<[A-Z][A-Z0-9_]*_[0-9]+"
_PLAIN = re.compile(_SHAPE + ">")
_MARKER_ALPHABET = "abcdefghjkmnpqrstuvwxyz"
_MARKER_LENGTH = 5
# Shorter values are not searched for elsewhere: they would match ordinary words.
_MIN_PROPAGATED = 3

_Span = tuple[int, int, str]  # start, end, entity type


def _json_escape(value: str) -> str:
    """``value`` as it must appear between the quotes of a JSON string."""
    return json.dumps(value, ensure_ascii=False)[1:-1]


class Pseudonymizer:
    """The placeholder ↔ value mapping of one request (memory only, never shown).

    Built by :func:`pseudonymize_request`; afterwards it only restores text.
    """

    __slots__ = ("_by_placeholder", "_by_value", "_counters", "_pattern", "_prefixes", "_suffix")

    def __init__(self, *, marker: str = "") -> None:
        if marker and not re.fullmatch(r"[a-z]+", marker):
            raise ValueError("marker must be lower-case ASCII letters")
        self._suffix = f"_{marker}" if marker else ""
        self._pattern = re.compile(_SHAPE + re.escape(self._suffix) + ">")
        self._by_value: dict[tuple[str, str], str] = {}
        self._by_placeholder: dict[str, str] = {}
        self._counters: dict[str, int] = {}
        self._prefixes: frozenset[str] | None = None

    # Never show, copy or serialise the mapping: these are the ways objects leak.
    def __repr__(self) -> str:
        return f"Pseudonymizer(placeholders={len(self)}, marked={self.marked})"

    __str__ = __repr__

    def __reduce_ex__(self, protocol: object) -> NoReturn:
        raise TypeError("a Pseudonymizer holds sensitive values and cannot be copied or pickled")

    def __len__(self) -> int:
        return len(self._by_placeholder)

    @property
    def marked(self) -> bool:
        """True when placeholders carry a per-request marker (the prompt held a look-alike)."""
        return bool(self._suffix)

    def counts(self) -> dict[str, int]:
        """Entity type -> number of distinct values replaced (safe to log or audit)."""
        return dict(sorted(self._counters.items()))

    def placeholder(self, entity_type: str, value: str) -> str:
        """The placeholder for ``value``: the same one every time within this request."""
        if not re.fullmatch(r"[A-Z][A-Z0-9_]*", entity_type):
            raise ValueError("entity types are upper-case identifiers")
        key = (entity_type, value)
        found = self._by_value.get(key)
        if found is not None:
            return found
        n = self._counters.get(entity_type, 0) + 1
        self._counters[entity_type] = n
        made = f"<{entity_type}_{n}{self._suffix}>"
        self._by_value[key] = made
        self._by_placeholder[made] = value
        self._prefixes = None
        return made

    def restore(self, text: str) -> str:
        """Put the values back into ``text``; placeholders we did not issue stay as they are."""
        return self._pattern.sub(self._lookup(False), text)

    def restore_json(self, text: str) -> str:
        """Like :meth:`restore` for JSON text: values are escaped as JSON string content."""
        return self._pattern.sub(self._lookup(True), text)

    def restorer(self, *, json_strings: bool = False) -> Restorer:
        """A streaming restorer of one text; ``json_strings`` for tool-call arguments."""
        return Restorer(self, json_strings=json_strings)

    def stream_restorer(self) -> StreamRestorer:
        """A restorer for a whole ``ChatCompletionChunk`` stream."""
        return StreamRestorer(self)

    def restore_completion(self, completion: ChatCompletion) -> ChatCompletion:
        """A copy of ``completion`` with content, refusals and tool-call arguments restored."""
        out = completion.model_copy(deep=True)
        for choice in out.choices:
            msg = choice.message
            if msg.content is not None:
                msg.content = self.restore(msg.content)
            if msg.refusal is not None:
                msg.refusal = self.restore(msg.refusal)
            for call in msg.tool_calls or ():
                call.function.arguments = self.restore_json(call.function.arguments)
        return out

    def _lookup(self, escape: bool) -> Callable[[re.Match[str]], str]:
        table = self._by_placeholder

        def sub(m: re.Match[str]) -> str:
            value = table.get(m.group(0))
            if value is None:
                return m.group(0)
            return _json_escape(value) if escape else value

        return sub

    def _is_prefix(self, tail: str) -> bool:
        """True when ``tail`` is a proper prefix of a placeholder we issued."""
        if self._prefixes is None:
            self._prefixes = frozenset(
                p[:i] for p in self._by_placeholder for i in range(1, len(p))
            )
        return tail in self._prefixes


class Restorer:
    """Restores one streamed text (deltas in order), holding back only a split placeholder.

    ``feed`` returns what can be sent now; ``flush`` returns what is left at the end.
    Concatenating every output equals ``restore`` of the concatenated input.
    """

    __slots__ = ("_json", "_owner", "_pending")

    def __init__(self, owner: Pseudonymizer, *, json_strings: bool = False) -> None:
        self._owner = owner
        self._json = json_strings
        self._pending = ""

    def __repr__(self) -> str:
        return f"Restorer(json_strings={self._json}, holding={len(self._pending)})"

    __str__ = __repr__

    def feed(self, delta: str) -> str:
        text = self._pending + delta
        # Placeholders hold exactly one '<', so only text from the last '<' can be the
        # start of a placeholder that the next delta completes.
        cut = text.rfind("<")
        if cut >= 0 and self._owner._is_prefix(text[cut:]):
            self._pending = text[cut:]
            text = text[:cut]
        else:
            self._pending = ""
        return self._restore(text)

    def flush(self) -> str:
        # What is held is a strict prefix of a placeholder, so it restores to itself.
        rest, self._pending = self._pending, ""
        return rest

    def _restore(self, text: str) -> str:
        if self._json:
            return self._owner.restore_json(text)
        return self._owner.restore(text)


class StreamRestorer:
    """Restores a ``ChatCompletionChunk`` stream: content, refusals and tool-call arguments.

    Call :meth:`restore_chunk` on each chunk (it returns a new chunk) and :meth:`finish`
    once the upstream stream ends. Held text of a choice is released in the chunk that
    carries that choice's ``finish_reason``; ``finish`` returns a last chunk only when a
    stream ended without one.
    """

    __slots__ = ("_last", "_owner", "_texts", "_tools")

    def __init__(self, owner: Pseudonymizer) -> None:
        self._owner = owner
        # (choice index, field) -> restorer; (choice index, tool-call index) -> restorer.
        self._texts: dict[tuple[int, str], Restorer] = {}
        self._tools: dict[tuple[int, int], Restorer] = {}
        self._last: ChatCompletionChunk | None = None

    def __repr__(self) -> str:
        return f"StreamRestorer(open={len(self._texts) + len(self._tools)})"

    __str__ = __repr__

    def restore_chunk(self, chunk: ChatCompletionChunk) -> ChatCompletionChunk:
        out = chunk.model_copy(deep=True)
        self._last = chunk
        for choice in out.choices:
            d, i = choice.delta, choice.index
            if d.content is not None:
                d.content = self._text(i, "content").feed(d.content)
            if d.refusal is not None:
                d.refusal = self._text(i, "refusal").feed(d.refusal)
            for call in d.tool_calls or ():
                if call.function is not None and call.function.arguments is not None:
                    args = self._tool(i, call.index).feed(call.function.arguments)
                    call.function.arguments = args
            if choice.finish_reason is not None:
                self._release(i, d)
        return out

    def finish(self) -> ChatCompletionChunk | None:
        """A final chunk with whatever is still held back, or None when nothing is."""
        last = self._last
        indexes = sorted({i for i, _ in self._texts} | {i for i, _ in self._tools})
        choices: list[ChatChunkChoice] = []
        for i in indexes:
            delta = ChatDelta()
            if self._release(i, delta):
                choices.append(ChatChunkChoice(index=i, delta=delta))
        if not choices or last is None:
            return None
        return ChatCompletionChunk(
            id=last.id, created=last.created, model=last.model, choices=choices
        )

    def _text(self, i: int, field: str) -> Restorer:
        key = (i, field)
        if key not in self._texts:
            self._texts[key] = Restorer(self._owner)
        return self._texts[key]

    def _tool(self, i: int, call: int) -> Restorer:
        key = (i, call)
        if key not in self._tools:
            self._tools[key] = Restorer(self._owner, json_strings=True)
        return self._tools[key]

    def _release(self, i: int, delta: ChatDelta) -> bool:
        """Append the held text of choice ``i`` to ``delta``; True when there was any."""
        released = False
        for field in ("content", "refusal"):
            restorer = self._texts.pop((i, field), None)
            rest = restorer.flush() if restorer is not None else ""
            if rest:
                setattr(delta, field, (getattr(delta, field) or "") + rest)
                released = True
        for key in sorted(k for k in self._tools if k[0] == i):
            rest = self._tools.pop(key).flush()
            if not rest:
                continue
            released = True
            calls = delta.tool_calls if delta.tool_calls is not None else []
            delta.tool_calls = calls
            match = next((c for c in calls if c.index == key[1]), None)
            if match is None:
                calls.append(
                    ToolCallDelta(index=key[1], function=ToolCallFunctionDelta(arguments=rest))
                )
            elif match.function is None:
                match.function = ToolCallFunctionDelta(arguments=rest)
            else:
                match.function.arguments = (match.function.arguments or "") + rest
        return released


# --- the request side -------------------------------------------------------------------


@dataclass(slots=True)
class _Slot:
    """One place in the request that holds text: what the detector sees and how to write back.

    ``segments`` are the replaceable ranges of ``text`` (the whole text for plain
    strings; the string values for JSON tool arguments). ``write`` receives the new
    content of each segment, in order.
    """

    text: str
    segments: list[tuple[int, int]]
    write: Callable[[list[str]], None]


def _plain_slot(text: str, write: Callable[[str], None]) -> _Slot:
    return _Slot(text, [(0, len(text))], lambda parts: write(parts[0]))


def _leaves(node: dict[str, Any] | list[Any], key: str) -> Iterator[tuple[Any, Any, str]]:
    """(container, index, nearest key) of every string or number in a parsed JSON value."""
    items: list[tuple[Any, str]]
    if isinstance(node, dict):
        items = [(k, k) for k in node]
    else:
        items = [(i, key) for i in range(len(node))]
    for k, name in items:
        v = node[k]
        if isinstance(v, dict | list):
            yield from _leaves(v, name)
        elif isinstance(v, str) or (isinstance(v, int | float) and not isinstance(v, bool)):
            yield node, k, name


def _arguments_slot(arguments: str, write: Callable[[str], None]) -> _Slot:
    """Tool-call arguments: detect in the values of the JSON, with their keys as context."""
    try:
        parsed = json.loads(arguments)
    except ValueError:
        return _plain_slot(arguments, write)
    holder = [parsed]
    leaves = list(_leaves(holder, ""))
    # "key: value" lines give the detector the context words ("ssn: 536-22-1234") that
    # a bare value would lack; only the value ranges are replaced.
    lines: list[str] = []
    segments: list[tuple[int, int]] = []
    pos = 0
    for container, index, name in leaves:
        prefix = f"{name}: " if name else ""
        value = str(container[index])
        segments.append((pos + len(prefix), pos + len(prefix) + len(value)))
        lines.append(prefix + value + "\n")
        pos += len(lines[-1])

    def write_back(parts: list[str]) -> None:
        for (container, index, _), new in zip(leaves, parts, strict=True):
            if new != str(container[index]):
                container[index] = new
        write(json.dumps(holder[0], ensure_ascii=False))

    return _Slot("".join(lines), segments, write_back)


def _slots(request: ChatCompletionRequest) -> list[_Slot]:
    """Every text of the request's messages, in message order (``request`` is the copy)."""
    slots: list[_Slot] = []
    for msg in request.messages:
        if isinstance(msg.content, str):
            slots.append(_plain_slot(msg.content, partial(setattr, msg, "content")))
        elif msg.content is not None:
            for part in msg.content:
                if isinstance(part, TextPart):
                    slots.append(_plain_slot(part.text, partial(setattr, part, "text")))
        for call in msg.tool_calls or ():
            fn = call.function
            slots.append(_arguments_slot(fn.arguments, partial(setattr, fn, "arguments")))
    return slots


def _spans(entities: list[Entity], segment: tuple[int, int]) -> list[_Span]:
    """Entities clipped to one segment, relative to it, overlaps merged (never leak a piece)."""
    start, end = segment
    out: list[_Span] = []
    for e in entities:
        s, t = max(e.start, start), min(e.end, end)
        if s >= t:
            continue
        if out and s < out[-1][1]:
            prev = out[-1]
            out[-1] = (prev[0], max(prev[1], t - start), prev[2])
        else:
            out.append((s - start, t - start, e.type))
    return out


def _glued(text: str, start: int, end: int) -> bool:
    """True when a letter or digit touches either end of ``text[start:end]``."""
    return (start > 0 and text[start - 1].isalnum()) or (end < len(text) and text[end].isalnum())


def _propagate(text: str, spans: list[_Span], known: dict[str, str]) -> list[_Span]:
    """Add the other occurrences of already detected values, as whole words.

    The detector judges each text in its own context, so a name it found beside an SSN
    in one message can stand alone, unflagged, in the next; it must not leave there.
    """
    taken = list(spans)
    for value in sorted(known, key=len, reverse=True):
        if len(value) < _MIN_PROPAGATED:
            continue
        at = text.find(value)
        while at >= 0:
            end = at + len(value)
            free = not any(s < end and at < t for s, t, _ in taken)
            if free and not _glued(text, at, end):
                taken.append((at, end, known[value]))
            at = text.find(value, at + 1)
    return sorted(taken)


def _new_marker(corpus: str) -> str:
    while True:
        marker = "".join(secrets.choice(_MARKER_ALPHABET) for _ in range(_MARKER_LENGTH))
        if not re.search(_SHAPE + "_" + marker + ">", corpus):
            return marker


def pseudonymize_request(
    request: ChatCompletionRequest,
    detector: Detector,
    *,
    types: Collection[str] | None = None,
) -> tuple[ChatCompletionRequest, Pseudonymizer]:
    """A new request with every detected value in its messages replaced by a placeholder.

    Covers string content, text parts, tool-call arguments (string and number values
    of the JSON; keys are kept) and tool results. ``types`` limits which entity types
    are replaced (default: all the detector finds). ``request`` is not modified. The
    returned :class:`Pseudonymizer` restores the upstream's answer.
    """
    copy = request.model_copy(deep=True)
    corpus = request.model_dump_json()
    marker = _new_marker(corpus) if _PLAIN.search(corpus) else ""
    pseudonymizer = Pseudonymizer(marker=marker)
    slots = _slots(copy)
    verdict = detector.detect_many([slot.text for slot in slots])
    by_slot: dict[int, list[Entity]] = {}
    for e in verdict.entities:
        if types is None or e.type in types:
            by_slot.setdefault(e.text_index, []).append(e)
    # Per slot, per segment: the segment's text and its detected spans.
    found: list[list[tuple[str, list[_Span]]]] = []
    known: dict[str, str] = {}
    for index, slot in enumerate(slots):
        entities = sorted(by_slot.get(index, ()), key=lambda e: e.start)
        found.append([])
        for segment in slot.segments:
            text = slot.text[segment[0] : segment[1]]
            spans = _spans(entities, segment)
            found[-1].append((text, spans))
            for s, t, etype in spans:
                known.setdefault(text[s:t], etype)
    if not known:
        return copy, pseudonymizer
    # Placeholders are numbered in text order, after propagation, so numbering follows
    # first appearance in the request, not the order the detector happened to flag them.
    for slot, segments in zip(slots, found, strict=True):
        parts: list[str] = []
        changed = False
        for text, spans in segments:
            pieces: list[str] = []
            last = 0
            for s, t, etype in _propagate(text, spans, known):
                pieces += [text[last:s], pseudonymizer.placeholder(etype, text[s:t])]
                last = t
                changed = True
            pieces.append(text[last:])
            parts.append("".join(pieces))
        if changed:
            slot.write(parts)
    return copy, pseudonymizer
