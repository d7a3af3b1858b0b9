"""A llama.cpp sampler chain built from OpenAI sampling parameters.

Chain order: logit bias → presence/frequency penalties → greedy (temperature 0) or
temperature → top-p → seeded draw. Temperature comes before top-p so the nucleus is taken
over the scaled distribution, as OpenAI defines it. A fresh chain per job makes ``seed``
reproducible: same seed, same prompt, same parameters → same tokens.

A grammar is checked the way llama.cpp's own ``common_sampler`` does it: draw a token
without the grammar, check just that token against the grammar, and only when it is
rejected apply the grammar to the whole vocabulary and draw again. Applying a grammar to
all 49k candidates costs more than the model's forward pass, and the unconstrained draw
is accepted most of the time, so this keeps constrained decoding close to free-text speed.
The result is the same distribution as grammar-first sampling whenever the first draw
is valid, and a grammar-respecting draw otherwise.
"""

from __future__ import annotations

import ctypes
import secrets
from types import TracebackType
from typing import Any

import llama_cpp
import numpy as np

from airlock.engine.types import SamplingParams

__all__ = ["GrammarError", "Sampler", "llama_seed"]

_NEG_INF = float("-inf")


class GrammarError(RuntimeError):
    """llama.cpp refused a generated grammar (an airlock bug, not the caller's)."""


def llama_seed(seed: int | None) -> int:
    """Map an OpenAI seed (any int, or None for random) to llama.cpp's uint32 seed."""
    if seed is None:
        return secrets.randbits(31)
    value = seed & 0xFFFFFFFF
    # 0xFFFFFFFF means "random" to llama.cpp; keep user seeds deterministic.
    return 0xFFFFFFFE if value == llama_cpp.LLAMA_DEFAULT_SEED else value


class Sampler:
    """Owns one sampler chain (and grammar); use as a context manager to free native memory."""

    def __init__(
        self,
        *,
        vocab: Any,
        n_vocab: int,
        n_ctx: int,
        params: SamplingParams,
        grammar: str | None,
    ) -> None:
        self._n_vocab = n_vocab
        self._chain: Any = llama_cpp.llama_sampler_chain_init(
            llama_cpp.llama_sampler_chain_default_params()
        )
        self._grammar: Any = None
        self._data = (llama_cpp.llama_token_data * n_vocab)()
        self._view = np.ctypeslib.as_array(self._data)
        self._ids = np.arange(n_vocab, dtype=np.int32)
        self._one = (llama_cpp.llama_token_data * 1)()
        self._bias = {int(t): float(b) for t, b in (params.logit_bias or {}).items()}
        try:
            self._build(n_vocab, n_ctx, params)
            if grammar is not None:
                self._grammar = llama_cpp.llama_sampler_init_grammar(
                    vocab, grammar.encode(), b"root"
                )
                if not self._grammar:
                    raise GrammarError("llama.cpp rejected a generated grammar")
        except BaseException:
            self.close()
            raise

    def _add(self, sampler: Any) -> None:
        llama_cpp.llama_sampler_chain_add(self._chain, sampler)

    def _build(self, n_vocab: int, n_ctx: int, params: SamplingParams) -> None:
        if params.logit_bias:
            biases = (llama_cpp.llama_logit_bias * len(params.logit_bias))(
                *(
                    llama_cpp.llama_logit_bias(int(t), float(b))
                    for t, b in params.logit_bias.items()
                )
            )
            self._add(llama_cpp.llama_sampler_init_logit_bias(n_vocab, len(biases), biases))
        if params.presence_penalty or params.frequency_penalty:
            self._add(
                llama_cpp.llama_sampler_init_penalties(
                    n_vocab, n_ctx, 1.0, params.frequency_penalty, params.presence_penalty
                )
            )
        if params.temperature <= 0.0 or params.top_p <= 0.0:
            self._add(llama_cpp.llama_sampler_init_greedy())
            return
        self._add(llama_cpp.llama_sampler_init_temp(params.temperature))
        if params.top_p < 1.0:
            self._add(llama_cpp.llama_sampler_init_top_p(params.top_p, 1))
        self._add(llama_cpp.llama_sampler_init_dist(llama_seed(params.seed)))

    def _candidates(self, ctx: Any) -> llama_cpp.llama_token_data_array:
        logits = np.ctypeslib.as_array(
            llama_cpp.llama_get_logits_ith(ctx, -1), shape=(self._n_vocab,)
        )
        self._view["id"] = self._ids
        self._view["logit"] = logits
        self._view["p"] = 0.0
        return llama_cpp.llama_token_data_array(self._data, self._n_vocab, -1, False)

    def _draw(self, ctx: Any, *, with_grammar: bool) -> int:
        array = self._candidates(ctx)
        if with_grammar:
            llama_cpp.llama_sampler_apply(self._grammar, ctypes.byref(array))
        llama_cpp.llama_sampler_apply(self._chain, ctypes.byref(array))
        return int(self._data[array.selected].id)

    def _grammar_allows(self, token: int) -> bool:
        self._one[0] = llama_cpp.llama_token_data(token, 0.0, 0.0)
        array = llama_cpp.llama_token_data_array(self._one, 1, -1, False)
        llama_cpp.llama_sampler_apply(self._grammar, ctypes.byref(array))
        return bool(self._one[0].logit != _NEG_INF)

    def sample(self, ctx: Any) -> int:
        """Draw and accept a token from the logits of the last evaluated position."""
        if self._grammar is None:
            # The free-text hot path: llama.cpp builds the candidates from the last logits,
            # applies the chain and accepts the token in one native call (exactly what
            # ``draw`` + ``accept`` do), so the worker releases and re-takes the GIL once
            # per token instead of around every ctypes call.
            return int(llama_cpp.llama_sampler_sample(self._chain, ctx, -1))
        token = self.draw(ctx)
        self.accept(token)
        return token

    def draw(self, ctx: Any) -> int:
        """Draw a token the grammar allows, without recording it (see :meth:`accept`)."""
        token = self._draw(ctx, with_grammar=False)
        if self._grammar is not None and not self._grammar_allows(token):
            token = self._draw(ctx, with_grammar=True)
        return token

    def accept(self, token: int) -> None:
        """Record ``token`` as written: it advances the grammar and the penalty history."""
        if self._grammar is not None:
            llama_cpp.llama_sampler_accept(self._grammar, token)
        llama_cpp.llama_sampler_accept(self._chain, token)

    def allows(self, token: int) -> bool:
        """Whether the grammar (if any) lets ``token`` come next."""
        return self._grammar is None or self._grammar_allows(token)

    def likely(self, ctx: Any, k: int) -> list[int]:
        """Up to ``k`` tokens the grammar allows, most likely first (raw logits plus
        ``logit_bias``, so banned tokens stay banned)."""
        logits = np.ctypeslib.as_array(
            llama_cpp.llama_get_logits_ith(ctx, -1), shape=(self._n_vocab,)
        ).copy()
        for token, bias in self._bias.items():
            logits[token] += bias
        top = np.argpartition(-logits, k)[:k]
        top = top[np.argsort(-logits[top])]
        return [int(t) for t in top if logits[t] > -1e30 and self.allows(int(t))]

    def close(self) -> None:
        if self._chain is not None:
            llama_cpp.llama_sampler_free(self._chain)
            self._chain = None
        if self._grammar:
            llama_cpp.llama_sampler_free(self._grammar)
        self._grammar = None

    def __enter__(self) -> Sampler:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
