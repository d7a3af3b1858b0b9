"""Validate a job and turn it into a :class:`Plan`: prompt tokens, limits, grammars.

Everything a caller can get wrong is checked here, before the job is queued, so bad
requests fail fast with a 4xx instead of waiting for their turn on the worker.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Mapping

from airlock.engine.gbnf import Grammar, GrammarSyntaxError
from airlock.engine.json_grammar import GrammarBuilder, gbnf_literal
from airlock.engine.llama_model import LlamaModel
from airlock.engine.plan import OutputMode, Plan
from airlock.engine.tool_format import CALL_OPEN
from airlock.engine.tool_grammar import MAX_PARALLEL_CALLS, add_tool_call_rules
from airlock.engine.types import (
    ChatJob,
    CompletionJob,
    JsonObjectFormat,
    JsonSchemaFormat,
    ResponseFormat,
    SamplingParams,
)
from airlock.errors import BadRequestError, ContextLengthExceededError, UnsupportedParameterError

__all__ = ["Planner"]

_log = logging.getLogger(__name__)

_PARSED_GRAMMARS_KEPT = 32
"""Compiled grammars cached per planner (the generic JSON grammar is the common case)."""


class Planner:
    def __init__(self, model: LlamaModel) -> None:
        self._model = model
        self._marker = tuple(model.tokenize(CALL_OPEN, add_bos=False))
        # Plans are made on several threads at once (asyncio.to_thread).
        self._parsed: OrderedDict[str, Grammar | None] = OrderedDict()
        self._parsed_lock = threading.Lock()

    def _parse(self, grammar: str | None) -> Grammar | None:
        """The grammar as airlock reads it, for budget-aware closing (None: no closing)."""
        if grammar is None:
            return None
        with self._parsed_lock:
            if grammar in self._parsed:
                self._parsed.move_to_end(grammar)
                return self._parsed[grammar]
        try:
            parsed: Grammar | None = Grammar(grammar)
        except GrammarSyntaxError as exc:
            # A generator bug, not the caller's: decode without closing rather than fail.
            _log.warning("grammar not readable for closing: %s", type(exc).__name__)
            parsed = None
        with self._parsed_lock:
            self._parsed[grammar] = parsed
            if len(self._parsed) > _PARSED_GRAMMARS_KEPT:
                self._parsed.popitem(last=False)
        return parsed

    def check_logit_bias(self, bias: Mapping[int, float] | None) -> None:
        """Reject token ids outside the vocabulary (param ``logit_bias``)."""
        for token in bias or {}:
            if not 0 <= int(token) < self._model.n_vocab:
                raise BadRequestError(
                    f"logit_bias has token id {int(token)}, outside this model's vocabulary "
                    f"(0 to {self._model.n_vocab - 1}).",
                    param="logit_bias",
                )

    def _check_sampling(self, sampling: SamplingParams) -> None:
        self.check_logit_bias(sampling.logit_bias)
        if sampling.max_tokens is not None and sampling.max_tokens < 1:
            raise BadRequestError("max_tokens must be at least 1.", param="max_tokens")
        if sampling.temperature < 0:
            raise BadRequestError("temperature must be >= 0.", param="temperature")
        if not 0 <= sampling.top_p <= 1:
            raise BadRequestError("top_p must be between 0 and 1.", param="top_p")

    def _max_new(self, used: int, sampling: SamplingParams) -> int:
        """Tokens the answer may have; ``used`` counts prompt (and call marker) positions."""
        window = self._model.n_ctx
        wanted = sampling.max_tokens
        if wanted is None:
            if used < window:
                return window - used
            wanted = 1
        if used + wanted > window:
            raise ContextLengthExceededError(
                prompt_tokens=used,
                max_new_tokens=wanted,
                context_window=window,
            )
        return wanted

    def chat(self, job: ChatJob) -> Plan:
        self._check_sampling(job.sampling)
        choice = job.tool_choice
        names = [t.name for t in job.tools]
        if len(set(names)) != len(names):
            raise BadRequestError("tools contains the same function name twice.", param="tools")
        mode: OutputMode = "text"
        allowed: list[str] = []
        if choice.mode in ("required", "function") and not job.tools:
            raise BadRequestError(
                f"tool_choice '{choice.mode}' needs at least one tool in tools.",
                param="tool_choice",
            )
        if choice.mode == "function":
            if choice.function_name not in names:
                raise BadRequestError(
                    "tool_choice names a function that is not in tools.", param="tool_choice"
                )
            mode, allowed = "tools", [str(choice.function_name)]
        elif choice.mode == "required":
            mode, allowed = "tools", names
        elif choice.mode == "auto" and job.tools:
            mode, allowed = "auto", names
        # A named function means one call of it; otherwise parallel calls are bounded so a
        # small model cannot repeat calls forever.
        parallel = job.parallel_tool_calls and choice.mode != "function"
        max_calls = MAX_PARALLEL_CALLS if parallel else 1

        builder = GrammarBuilder()
        text_root = self._response_format_rule(builder, job.response_format)
        text_grammar: str | None = None
        tool_grammar: str | None = None
        if mode != "text":
            calls = add_tool_call_rules(builder, job.tools, allowed, max_calls)
            tool_grammar = builder.render(calls)
            if mode == "auto" and text_root is not None:
                # The answer is either JSON or a call marker; the engine switches grammars
                # when the marker appears, so the marker alternative needs no more than that.
                text_grammar = builder.render(f"{text_root} | {gbnf_literal(CALL_OPEN)} {calls}")
        elif text_root is not None:
            text_grammar = builder.render(text_root)

        rendered_tools = job.tools if mode != "text" else ()
        prompt = tuple(
            self._model.tokenize(self._model.template.render(job.messages, rendered_tools))
        )
        reserve = len(self._marker) if mode != "text" else 0
        max_new = self._max_new(len(prompt) + reserve, job.sampling)
        return Plan(
            prompt_tokens=prompt,
            max_new_tokens=max_new,
            sampling=job.sampling,
            mode=mode,
            text_grammar=text_grammar,
            tool_grammar=tool_grammar,
            text_parse=self._parse(text_grammar),
            tool_parse=self._parse(tool_grammar),
            tool_names=tuple(allowed),
            marker_tokens=self._marker,
        )

    def _response_format_rule(self, builder: GrammarBuilder, fmt: ResponseFormat) -> str | None:
        if isinstance(fmt, JsonObjectFormat):
            return "json-object"
        if isinstance(fmt, JsonSchemaFormat):
            return builder.add_schema(
                fmt.schema,
                prefix="schema",
                where="response_format.json_schema.schema",
                param="response_format",
            )
        return None

    def completion(self, job: CompletionJob) -> Plan:
        self._check_sampling(job.sampling)
        if job.suffix is not None:
            raise UnsupportedParameterError(
                "suffix is not supported: this model has no fill-in-the-middle tokens.",
                param="suffix",
            )
        if isinstance(job.prompt, str):
            tokens = self._model.tokenize(job.prompt)
            echo = job.prompt
        else:
            for token in job.prompt:
                if not 0 <= token < self._model.n_vocab:
                    raise BadRequestError(
                        f"prompt has token id {token}, outside this model's vocabulary "
                        f"(0 to {self._model.n_vocab - 1}).",
                        param="prompt",
                    )
            tokens = list(job.prompt)
            echo = self._model.detokenize(tokens)
        if not tokens:
            # Generation needs one position to sample from; start from the BOS token.
            tokens = [self._model.bos_token]
        prompt = tuple(tokens)
        max_new = self._max_new(len(prompt), job.sampling)
        return Plan(
            prompt_tokens=prompt,
            max_new_tokens=max_new,
            sampling=job.sampling,
            echo=echo if job.echo and echo else None,
        )
