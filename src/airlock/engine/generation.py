"""Generate one job on the worker thread, turning tokens into engine events.

Phases: ``text`` (stop sequences apply, text may be held back while it could still be a
stop sequence), ``tool`` (grammar-constrained calls parsed into tool-call events) and, for
``tool_choice: auto``, ``undecided``: output is held back while it could still be the
``<tool_call>`` marker. During that phase a small "decision" grammar lets the answer start
with either the marker or anything that does not begin with ``<`` (so a model reaching for
tag-like output commits to a call rather than writing a malformed one). If the model writes
the marker, generation rolls back to the end of the prompt, writes the canonical marker
itself and continues under the tool-call grammar; otherwise the held text is released as
ordinary content and the rest runs without a grammar (free text pays no grammar cost).

Whenever a JSON or tool-call grammar is active, a :class:`~airlock.engine.closing.Closer`
keeps the output completable within ``max_tokens``: near the end of the budget it steers
the model to close what is open (or writes the shortest completion), so constrained output
parses; ``finish_reason: "length"`` remains only when even the shortest completion never
fit.
"""

from __future__ import annotations

import codecs
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from airlock.engine.closing import Closer
from airlock.engine.gbnf import Grammar
from airlock.engine.json_grammar import gbnf_literal
from airlock.engine.llama_model import LlamaModel
from airlock.engine.plan import Plan
from airlock.engine.sampler import Sampler
from airlock.engine.stop_filter import StopFilter
from airlock.engine.tool_format import CALL_OPEN
from airlock.engine.tool_parser import ToolCallParser
from airlock.engine.types import EngineEvent, Finished, FinishReason, TextDelta

__all__ = ["DECISION_GRAMMAR", "GenerationResult", "generate"]

_CLOSING_CANDIDATES = 32
"""The model's most likely tokens considered when the budget forces it to close."""
_WRAP_UP_CANDIDATES = 32
"""The model's most likely tokens considered instead of opening structure when wrapping up."""

_MARKER = CALL_OPEN.rstrip("\n")

DECISION_GRAMMAR = (
    "root ::= [ \\t\\n]{0,8} ( " + gbnf_literal(_MARKER) + " | [^< \\t\\n] [^\\x00]* )?\n"
)


@dataclass(frozen=True, slots=True)
class GenerationResult:
    completion_tokens: int
    finish_reason: FinishReason | None  # None when cancelled


def generate(
    model: LlamaModel,
    plan: Plan,
    cancelled: Callable[[], bool],
    emit: Callable[[EngineEvent], None],
    wake: Callable[[], None],
) -> GenerationResult:
    """Run ``plan``; ``emit`` may hold events back until ``wake``, which is called right
    before every decode (and the caller delivers whatever is left once this returns)."""
    return _Run(model, plan, cancelled, emit, wake).run()


class _Run:
    def __init__(
        self,
        model: LlamaModel,
        plan: Plan,
        cancelled: Callable[[], bool],
        emit: Callable[[EngineEvent], None],
        wake: Callable[[], None],
    ) -> None:
        self._model = model
        self._plan = plan
        self._cancelled = cancelled
        self._emit = emit
        self._wake = wake
        self._stop = StopFilter(plan.sampling.stop)
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._parser = ToolCallParser(plan.tool_names)
        self._held = ""
        self._completion = 0
        self._phase = "text"
        self._closer: Closer | None = None

    def _track(self, grammar: Grammar | None) -> None:
        """Start budget-aware closing for output under ``grammar`` (None: stop it)."""
        self._closer = (
            None
            if grammar is None
            else Closer(
                grammar,
                piece=self._model.piece,
                tokenize=lambda text: self._model.tokenize(text, add_bos=False),
            )
        )

    def _next_token(self, sampler: Sampler) -> int:
        """The model's token, unless the budget says the output must start closing."""
        closer = self._closer
        if closer is None or not closer.active:
            return sampler.sample(self._model.ctx)
        remaining = self._plan.max_new_tokens - self._completion
        forced = closer.next_forced()
        if forced is not None:
            if sampler.allows(forced):
                sampler.accept(forced)
                return forced
            closer.abandon()
        token = sampler.draw(self._model.ctx)
        if self._model.is_eog(token):
            sampler.accept(token)
            return token
        if closer.opens(token) and closer.wrapping_up(remaining):
            likely = sampler.likely(self._model.ctx, _WRAP_UP_CANDIDATES)
            calmer = closer.choose(
                [t for t in likely if not self._model.is_eog(t) and not closer.opens(t)],
                remaining,
            )
            token = token if calmer is None else calmer
        if not closer.fits(token, remaining):
            likely = sampler.likely(self._model.ctx, _CLOSING_CANDIDATES)
            chosen = closer.choose([t for t in likely if not self._model.is_eog(t)], remaining)
            if chosen is None:
                chosen = closer.start_forcing(remaining)
                if chosen is not None and not sampler.allows(chosen):
                    closer.abandon()
                    chosen = None
            # With no way to close in budget, the model goes on and the job ends at "length".
            token = token if chosen is None else chosen
        sampler.accept(token)
        return token

    def _sampler(self, grammar: str | None) -> Sampler:
        return Sampler(
            vocab=self._model.vocab,
            n_vocab=self._model.n_vocab,
            n_ctx=self._model.n_ctx,
            params=self._plan.sampling,
            grammar=grammar,
        )

    def run(self) -> GenerationResult:
        plan = self._plan
        # A seeded or greedy request must give the same text every time: no cached prefix.
        reuse = plan.sampling.seed is None and plan.sampling.temperature > 0
        if not self._model.load_prompt(plan.prompt_tokens, self._cancelled, reuse_prefix=reuse):
            return GenerationResult(0, None)
        if plan.echo:
            self._emit(TextDelta(plan.echo))
        grammar = plan.text_grammar
        self._track(plan.text_parse)
        if plan.mode == "tools":
            self._enter_tool_phase()
            grammar = plan.tool_grammar
        elif plan.mode == "auto":
            self._phase = "undecided"
            grammar = plan.text_grammar or DECISION_GRAMMAR
        sampler = self._sampler(grammar)
        try:
            while True:
                if self._cancelled():
                    return GenerationResult(self._completion, None)
                if self._completion >= plan.max_new_tokens:
                    if self._closer is not None and self._closer.complete:
                        # The budget ran out exactly as the grammar's output was complete
                        # (closing makes this the usual case): a natural end, not a cut.
                        return self._finish("tool_calls" if self._phase == "tool" else "stop")
                    return self._finish("length")
                token = self._next_token(sampler)
                if self._model.is_eog(token):
                    return self._finish("tool_calls" if self._phase == "tool" else "stop")
                self._completion += 1
                if self._closer is not None:
                    self._closer.commit(token)
                text = self._decoder.decode(self._model.piece(token))
                if self._phase == "undecided":
                    decision = self._undecided(text)
                    if decision == "tool":
                        # The model started a tool call: restart it under the tool grammar.
                        sampler.close()
                        self._enter_tool_phase()
                        sampler = self._sampler(plan.tool_grammar)
                        continue
                    if decision == "text" and plan.text_grammar is None:
                        sampler.close()
                        sampler = self._sampler(None)
                elif self._phase == "text":
                    self._text(text)
                else:
                    for event in self._parser.feed(text):
                        self._emit(event)
                if self._stop.stopped:
                    return self._finish("stop")
                if self._completion < plan.max_new_tokens:
                    self._model.eval([token], before_decode=self._wake)
        finally:
            sampler.close()

    def _enter_tool_phase(self) -> None:
        """Write the canonical call marker after the prompt, as if the model had."""
        prompt_len = len(self._plan.prompt_tokens)
        self._model.truncate(prompt_len)
        self._model.eval(self._plan.marker_tokens, before_decode=self._wake)
        # The marker is scaffolding, not visible output: completion tokens count only what the
        # model produces after it (tokens discarded by the roll-back are not counted either).
        self._completion = 0
        self._decoder.reset()
        self._held = ""
        self._phase = "tool"
        self._track(self._plan.tool_parse)

    def _undecided(self, text: str) -> Literal["tool", "text"] | None:
        """Hold text while it may be the call marker; say when the model has chosen."""
        self._held += text
        head = self._held.lstrip()
        if head.startswith(_MARKER):
            return "tool"
        if _MARKER.startswith(head):
            return None
        self._phase = "text"
        held, self._held = self._held, ""
        self._text(held)
        return "text"

    def _text(self, text: str) -> None:
        out = self._stop.feed(text)
        if out:
            self._emit(TextDelta(out))

    def _finish(self, reason: FinishReason) -> GenerationResult:
        tail = self._decoder.decode(b"", final=True)
        if self._phase == "tool":
            for event in self._parser.feed(tail):
                self._emit(event)
        else:
            out = self._stop.feed(self._held + tail) + self._stop.flush()
            if out:
                self._emit(TextDelta(out))
            if self._stop.stopped:
                reason = "stop"
        self._emit(
            Finished(
                finish_reason=reason,
                prompt_tokens=len(self._plan.prompt_tokens),
                completion_tokens=self._completion,
            )
        )
        return GenerationResult(self._completion, reason)
