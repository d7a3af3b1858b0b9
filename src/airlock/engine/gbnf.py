"""A Python reading of the GBNF grammars airlock generates: where the output stands, and the
shortest text that completes it.

llama.cpp enforces a grammar token by token but cannot say how far the output is from a
valid end. The budget-aware closer (:mod:`airlock.engine.closing`) needs exactly that, so
this module parses the same grammar text (the subset llama.cpp's GBNF parser reads:
literals, character classes, ``.``, rule references, groups, ``|``, ``?``, ``*``, ``+``
and ``{m}``/``{m,}``/``{m,n}``) and tracks the output the way llama.cpp does: as a set of
stacks of grammar positions, one per live parse. Repetitions are expanded into helper
rules the way llama.cpp expands them, so both sides agree on what is allowed.

The shortest completion of a parse is the concatenation of the shortest strings of the
grammar elements still pending on its stack, read top to bottom; they are computed once
per grammar by a fixed point over the rules.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

__all__ = ["Grammar", "GrammarSyntaxError", "GrammarTrackingError", "ParseState"]

_MAX_STACKS = 256
"""Live parses kept per state; our grammars stay far below (a guard, not a tuning knob)."""

_END = -1
_ANY: tuple[tuple[int, int], ...] = ((0, 0x10FFFF),)

# Preferred stand-ins for a character class in completions, most readable first.
_PREFERRED = 'a0 1"}]'

_TOKEN = re.compile(
    r"""
    (?P<ws>[ \t\r\n]+|\#[^\n]*)
  | (?P<define>::=)
  | (?P<name>[A-Za-z0-9_-]+)
  | (?P<literal>"(?:[^"\\]|\\.)*")
  | (?P<cls>\[(?:[^\]\\]|\\.)*\])
  | (?P<repeat>\{\s*\d+\s*(?:,\s*\d*\s*)?\})
  | (?P<punct>[()|?*+.])
    """,
    re.VERBOSE | re.DOTALL,
)


class GrammarSyntaxError(ValueError):
    """The grammar text is outside the supported GBNF subset (an airlock bug)."""


class GrammarTrackingError(RuntimeError):
    """The output has more live parses than are tracked (a grammar far more ambiguous than
    the ones airlock generates)."""


@dataclass(frozen=True, slots=True)
class _Char:
    ranges: tuple[tuple[int, int], ...]
    negated: bool

    def matches(self, code: int) -> bool:
        inside = any(lo <= code <= hi for lo, hi in self.ranges)
        return inside != self.negated

    def example(self) -> str:
        for ch in _PREFERRED:
            if self.matches(ord(ch)):
                return ch
        if not self.negated:
            return chr(self.ranges[0][0])
        return next(chr(c) for c in range(0x20, 0x10FFFF) if self.matches(c))


@dataclass(frozen=True, slots=True)
class _Ref:
    rule: int


_Element = _Char | _Ref
_Seq = list[_Element]


def _unescape(body: str, i: int) -> tuple[int, int]:
    """Decode the escape starting at ``body[i] == '\\'``; returns (code point, next index)."""
    ch = body[i + 1]
    simple = {"n": "\n", "r": "\r", "t": "\t", "\\": "\\", '"': '"', "[": "[", "]": "]", "-": "-"}
    if ch in simple:
        return ord(simple[ch]), i + 2
    width = {"x": 2, "u": 4, "U": 8}.get(ch)
    if width is None:
        raise GrammarSyntaxError(f"unknown escape \\{ch}")
    return int(body[i + 2 : i + 2 + width], 16), i + 2 + width


def _chars(body: str) -> Iterator[int]:
    i = 0
    while i < len(body):
        if body[i] == "\\":
            code, i = _unescape(body, i)
        else:
            code, i = ord(body[i]), i + 1
        yield code


def _char_class(text: str) -> _Char:
    body = text[1:-1]
    negated = body.startswith("^")
    if negated:
        body = body[1:]
    codes: list[tuple[int, bool]] = []  # (code point, was a bare '-')
    i = 0
    while i < len(body):
        if body[i] == "\\":
            code, i = _unescape(body, i)
            codes.append((code, False))
        else:
            codes.append((ord(body[i]), body[i] == "-"))
            i += 1
    ranges: list[tuple[int, int]] = []
    j = 0
    while j < len(codes):
        if j + 2 < len(codes) and codes[j + 1][1]:
            ranges.append((codes[j][0], codes[j + 2][0]))
            j += 3
        else:
            ranges.append((codes[j][0], codes[j][0]))
            j += 1
    return _Char(tuple(ranges), negated)


class _Compiler:
    """GBNF text → rules of alternatives (sequences of chars and rule references)."""

    def __init__(self, text: str) -> None:
        self.tokens: list[tuple[str, str]] = []
        pos = 0
        while pos < len(text):
            m = _TOKEN.match(text, pos)
            if m is None:
                raise GrammarSyntaxError(f"unexpected text at offset {pos}")
            pos = m.end()
            kind = m.lastgroup or ""
            if kind != "ws":
                self.tokens.append((kind, m.group()))
        self.pos = 0
        self.names: dict[str, int] = {}
        self.rules: list[list[_Seq] | None] = []

    def rule_id(self, name: str) -> int:
        if name not in self.names:
            self.names[name] = len(self.rules)
            self.rules.append(None)
        return self.names[name]

    def helper(self, alternatives: list[_Seq]) -> int:
        self.rules.append(alternatives)
        return len(self.rules) - 1

    def peek(self, offset: int = 0) -> tuple[str, str]:
        i = self.pos + offset
        return self.tokens[i] if i < len(self.tokens) else ("eof", "")

    def compile(self) -> tuple[list[list[_Seq]], int]:
        while self.peek()[0] != "eof":
            kind, name = self.peek()
            if kind != "name" or self.peek(1)[0] != "define":
                raise GrammarSyntaxError("expected 'name ::='")
            self.pos += 2
            rid = self.rule_id(name)
            if self.rules[rid] is not None:
                raise GrammarSyntaxError(f"rule {name} defined twice")
            self.rules[rid] = self.alternatives()
        missing = [n for n, i in self.names.items() if self.rules[i] is None]
        if missing:
            raise GrammarSyntaxError(f"undefined rule {missing[0]}")
        if "root" not in self.names:
            raise GrammarSyntaxError("no root rule")
        return [r for r in self.rules if r is not None], self.names["root"]

    def at_rule_start(self) -> bool:
        return self.peek()[0] == "name" and self.peek(1)[0] == "define"

    def alternatives(self) -> list[_Seq]:
        alts = [self.sequence()]
        while self.peek() == ("punct", "|"):
            self.pos += 1
            alts.append(self.sequence())
        return alts

    def sequence(self) -> _Seq:
        seq: _Seq = []
        while True:
            kind, text = self.peek()
            if kind == "eof" or self.at_rule_start() or (kind == "punct" and text in "|)"):
                return seq
            self.pos += 1
            if kind == "literal":
                atom: _Seq = [_Char(((c, c),), False) for c in _chars(text[1:-1])]
            elif kind == "cls":
                atom = [_char_class(text)]
            elif kind == "name":
                atom = [_Ref(self.rule_id(text))]
            elif text == ".":
                atom = [_Char(_ANY, False)]
            elif text == "(":
                inner = self.alternatives()
                if self.peek() != ("punct", ")"):
                    raise GrammarSyntaxError("unbalanced '('")
                self.pos += 1
                atom = inner[0] if len(inner) == 1 else [_Ref(self.helper(inner))]
            else:
                raise GrammarSyntaxError(f"unexpected {text!r}")
            seq.extend(self.quantified(atom))

    def quantified(self, atom: _Seq) -> _Seq:
        kind, text = self.peek()
        if kind == "punct" and text in "?*+":
            low, high = {"?": (0, 1), "*": (0, None), "+": (1, None)}[text]
        elif kind == "repeat":
            parts = text[1:-1].split(",")
            low = int(parts[0])
            high = low if len(parts) == 1 else (int(parts[1]) if parts[1].strip() else None)
        else:
            return atom
        self.pos += 1
        out: _Seq = []
        for _ in range(low):
            out.extend(atom)
        if high is None:
            # R ::= atom R | ε  (the reference is reserved first: R refers to itself).
            star = self.helper([])
            self.rules[star] = [[*atom, _Ref(star)], []]
            out.append(_Ref(star))
        elif high > low:
            # Nested optionals, as llama.cpp expands them: (atom (atom (atom)?)?)?
            tail = self.helper([atom, []])
            for _ in range(high - low - 1):
                tail = self.helper([[*atom, _Ref(tail)], []])
            out.append(_Ref(tail))
        return out


Stack = tuple[int, ...]
"""Grammar positions still to match, the innermost (next) one last."""


class Grammar:
    """A compiled grammar; :meth:`start` gives the state before any output."""

    def __init__(self, text: str) -> None:
        rules, root = _Compiler(text).compile()
        # Flatten every alternative into one element array with END markers, as llama.cpp
        # does: a position is an index, and the position after an element is index + 1.
        self._elements: list[_Element | None] = []
        self._alts: list[list[int]] = []
        for alternatives in rules:
            starts = []
            for seq in alternatives:
                starts.append(len(self._elements))
                self._elements.extend(seq)
                self._elements.append(None)
            self._alts.append(starts)
        self._root = root
        self._rule_short = self._shortest_rules(rules)
        self._suffix: dict[int, str] = {}

    def _shortest_rules(self, rules: list[list[_Seq]]) -> list[str]:
        best: list[str | None] = [None] * len(rules)

        def seq_text(seq: _Seq) -> str | None:
            parts = []
            for el in seq:
                part = el.example() if isinstance(el, _Char) else best[el.rule]
                if part is None:
                    return None
                parts.append(part)
            return "".join(parts)

        changed = True
        while changed:
            changed = False
            for rid, alternatives in enumerate(rules):
                for seq in alternatives:
                    text = seq_text(seq)
                    current = best[rid]
                    if text is not None and (current is None or len(text) < len(current)):
                        best[rid] = text
                        changed = True
        if any(b is None for b in best):
            raise GrammarSyntaxError("a rule derives no finite text")
        return [b or "" for b in best]

    def _suffix_text(self, pos: int) -> str:
        """Shortest text matching the elements from ``pos`` to the end of its sequence."""
        cached = self._suffix.get(pos)
        if cached is not None:
            return cached
        parts = []
        i = pos
        while (el := self._elements[i]) is not None:
            parts.append(el.example() if isinstance(el, _Char) else self._rule_short[el.rule])
            i += 1
        text = "".join(parts)
        self._suffix[pos] = text
        return text

    def _expand(self, stack: Stack, out: set[Stack], seen: set[Stack]) -> None:
        """Add to ``out`` every stack reachable from ``stack`` whose top is a character
        element (or the empty stack: the grammar may end here)."""
        if stack in seen:
            return
        seen.add(stack)
        if not stack:
            out.add(stack)
            return
        pos = stack[-1]
        el = self._elements[pos]
        if isinstance(el, _Char):
            out.add(stack)
            return
        assert isinstance(el, _Ref)
        rest = self._after(stack[:-1], pos)
        for start in self._alts[el.rule]:
            if self._elements[start] is None:
                self._expand(rest, out, seen)
            else:
                self._expand((*rest, start), out, seen)

    def _after(self, rest: Stack, pos: int) -> Stack:
        # Drop a finished sequence instead of keeping its end on the stack (tail position).
        return rest if self._elements[pos + 1] is None else (*rest, pos + 1)

    def start(self) -> ParseState:
        out: set[Stack] = set()
        for begin in self._alts[self._root]:
            stack: Stack = () if self._elements[begin] is None else (begin,)
            self._expand(stack, out, set())
        return ParseState(self, frozenset(out))

    def _advance(self, stacks: frozenset[Stack], text: str) -> frozenset[Stack]:
        for ch in text:
            code = ord(ch)
            out: set[Stack] = set()
            seen: set[Stack] = set()
            for stack in stacks:
                if not stack:
                    continue
                el = self._elements[stack[-1]]
                if isinstance(el, _Char) and el.matches(code):
                    self._expand(self._after(stack[:-1], stack[-1]), out, seen)
            if len(out) > _MAX_STACKS:
                raise GrammarTrackingError(f"more than {_MAX_STACKS} live parses")
            stacks = frozenset(out)
            if not stacks:
                break
        return stacks

    def _completions(self, stacks: Iterable[Stack]) -> set[str]:
        return {"".join(self._suffix_text(pos) for pos in reversed(stack)) for stack in stacks}


@dataclass(frozen=True, slots=True)
class ParseState:
    """Where the output stands in the grammar (immutable: advancing makes a new state)."""

    grammar: Grammar
    stacks: frozenset[Stack]

    @property
    def dead(self) -> bool:
        """No parse survives: the text so far is not a prefix of the grammar's language."""
        return not self.stacks

    @property
    def complete(self) -> bool:
        """The text so far is a whole sentence of the grammar (it may also go on)."""
        return () in self.stacks

    def advance(self, text: str) -> ParseState:
        return ParseState(self.grammar, self.grammar._advance(self.stacks, text))

    def completions(self) -> set[str]:
        """The shortest completion of each live parse (``""`` when already complete)."""
        return self.grammar._completions(self.stacks)
