"""Budget-aware closing: grammar-constrained output always ends within ``max_tokens``.

A grammar keeps every token valid but cannot make the model *finish*: a small model asked
for a JSON object may keep writing one long string until ``max_tokens`` cuts it off, which
leaves text that does not parse. The closer keeps one invariant instead:

    tokens of the shortest valid completion  <=  tokens still allowed

It starts true (when even the shortest answer cannot fit, the closer stays out of the way
and the job ends with ``finish_reason: "length"``) and every token keeps it true:

* the model's own token is taken whenever the invariant still holds after it;
* otherwise the closer looks at the model's most likely tokens the grammar allows and takes
  the best one that keeps the invariant (usually a closing quote or bracket);
* if none does, it writes the shortest completion itself, token by token.

Before that hard edge there is a soft one: once fewer than :data:`WRAP_UP_TOKENS` tokens
are left beyond what closing costs, a token that opens new structure (a new member, a
nested object, a new string) is swapped for one of the model's most likely tokens
that does not, when there is one. The model then finishes the value it is writing and
closes, instead of starting a member that would be cut short.

So when the budget runs short the answer closes where the model is, with the model
choosing how as long as it can, and ends with ``finish_reason: "stop"``. Budgets are
counted in the model's own tokens (the completion text is tokenized), so the forced tail
always fits exactly.
"""

from __future__ import annotations

import codecs
from collections.abc import Callable, Sequence

from airlock.engine.gbnf import Grammar, GrammarTrackingError, ParseState

__all__ = ["WRAP_UP_TOKENS", "Closer"]

WRAP_UP_TOKENS = 16
"""Width of the soft zone before the budget forces closing (see the module docstring)."""

_CANDIDATES_CHECKED = 4
"""Completions (shortest in characters first) whose tokens are counted per check."""


class Closer:
    """Tracks one grammar-constrained output and decides when it must start closing.

    If the output ever leaves what :mod:`airlock.engine.gbnf` can follow (bytes that are
    not UTF-8, a parse the interpreter loses), the closer goes quiet for the rest of the
    job: it never fails a job, it only stops steering it.
    """

    def __init__(
        self,
        grammar: Grammar,
        *,
        piece: Callable[[int], bytes],
        tokenize: Callable[[str], list[int]],
    ) -> None:
        self._piece = piece
        self._tokenize = tokenize
        self._state = grammar.start()
        # A decoder of its own: checking a candidate must not disturb the output decoder.
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="strict")
        self._forced: list[int] = []
        self._peeked: tuple[int, ParseState, bool] | None = None
        self._lost = False

    @property
    def active(self) -> bool:
        return not self._lost

    @property
    def complete(self) -> bool:
        """The output so far is a whole sentence of the grammar."""
        return self._state.complete

    def next_forced(self) -> int | None:
        return self._forced[0] if self._forced else None

    def abandon(self) -> None:
        """Stop forcing (llama.cpp refused a forced token; not expected to happen)."""
        self._forced.clear()

    def _after(self, token: int) -> tuple[ParseState, bool] | None:
        """The parse state after ``token`` and whether a character is still incomplete;
        None when the closer cannot follow (the bytes are not UTF-8, or the grammar is too
        ambiguous to track)."""
        if self._peeked is not None and self._peeked[0] == token:
            return self._peeked[1], self._peeked[2]
        saved = self._decoder.getstate()
        try:
            text = self._decoder.decode(self._piece(token))
            partial = bool(self._decoder.getstate()[0])
            state = self._state.advance(text)
        except (UnicodeDecodeError, GrammarTrackingError):
            return None
        finally:
            self._decoder.setstate(saved)
        self._peeked = (token, state, partial)
        return state, partial

    def cost(self, state: ParseState, within: int) -> list[int] | None:
        """Tokens of the cheapest completion of ``state`` if it takes at most ``within``
        tokens, else None. Empty when the output is already complete."""
        if state.complete:
            return []
        best: list[int] | None = None
        for text in sorted(state.completions(), key=len)[:_CANDIDATES_CHECKED]:
            tokens = self._tokenize(text)
            if len(tokens) <= within and (best is None or len(tokens) < len(best)):
                best = tokens
        return best

    def fits(self, token: int, remaining: int) -> bool:
        """Whether writing ``token`` (with ``remaining`` tokens left, it included) keeps a
        valid end within the budget."""
        if self._lost:
            return True
        after = self._after(token)
        if after is None or after[0].dead:
            return False
        state, partial = after
        if state.complete and not partial:
            return True
        # An unfinished character needs (at least) one more token before any closing text.
        left = remaining - 1 - int(partial)
        if left <= 0:
            return False
        # A token covers at least one byte, so a completion this short fits untokenized.
        if _shortest_bytes(state) <= left:
            return True
        return self.cost(state, left) is not None

    def wrapping_up(self, remaining: int) -> bool:
        """Whether fewer than :data:`WRAP_UP_TOKENS` of ``remaining`` are spare beyond the
        closing cost."""
        if self._lost or self._state.complete:
            return False
        # Closing costs at most one token per byte: far from the edge without tokenizing.
        if remaining > _shortest_bytes(self._state) + WRAP_UP_TOKENS:
            return False
        return self.cost(self._state, remaining - WRAP_UP_TOKENS) is None

    def opens(self, token: int) -> bool:
        """Whether ``token`` lengthens the shortest completion (opens new structure)."""
        if self._lost:
            return False
        after = self._after(token)
        if after is None or after[0].dead:
            return True
        if after[0].complete:
            return False
        return _shortest_bytes(after[0]) > _shortest_bytes(self._state)

    def start_forcing(self, remaining: int) -> int | None:
        """Plan the shortest completion and return its first token; None when it does not
        fit in ``remaining`` tokens (or a character is incomplete)."""
        if self._lost or self._decoder.getstate()[0]:
            return None
        tokens = self.cost(self._state, remaining)
        if not tokens:
            return None
        self._forced = list(tokens)
        return tokens[0]

    def choose(self, candidates: Sequence[int], remaining: int) -> int | None:
        """The first of ``candidates`` (most likely first) that keeps the invariant."""
        for token in candidates:
            if self.fits(token, remaining):
                return token
        return None

    def commit(self, token: int) -> None:
        """Record that ``token`` was written."""
        if self._lost:
            return
        after = self._after(token)
        self._peeked = None
        if after is None or after[0].dead:
            # llama.cpp took a token this reading of the grammar cannot follow.
            self._lost = True
            self._forced.clear()
            return
        self._decoder.decode(self._piece(token))
        self._state = after[0]
        if self._forced and self._forced[0] == token:
            self._forced.pop(0)
        else:
            self._forced.clear()


def _shortest_bytes(state: ParseState) -> int:
    return min(len(t.encode("utf-8")) for t in state.completions())
