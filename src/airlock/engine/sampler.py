"""A llama.cpp sampler chain built from OpenAI sampling parameters.

Chain order: logit bias → presence/frequency penalties → grammar → greedy (temperature 0)
or temperature → top-p → seeded draw. Temperature comes before top-p so the nucleus is
taken over the scaled distribution, as OpenAI defines it. A fresh chain per job makes
``seed`` reproducible: same seed, same prompt, same parameters → same tokens.
"""

from __future__ import annotations

import ctypes
import secrets
from types import TracebackType
from typing import Any

import llama_cpp

from airlock.engine.types import SamplingParams

__all__ = ["GrammarError", "Sampler", "llama_seed"]


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
    """Owns one sampler chain; use as a context manager so native memory is freed."""

    def __init__(
        self,
        *,
        vocab: Any,
        n_vocab: int,
        n_ctx: int,
        params: SamplingParams,
        grammar: str | None,
    ) -> None:
        chain_params = llama_cpp.llama_sampler_chain_default_params()
        self._chain: Any = llama_cpp.llama_sampler_chain_init(chain_params)
        try:
            self._build(vocab, n_vocab, n_ctx, params, grammar)
        except BaseException:
            self.close()
            raise

    def _add(self, sampler: Any) -> None:
        llama_cpp.llama_sampler_chain_add(self._chain, sampler)

    def _build(
        self, vocab: Any, n_vocab: int, n_ctx: int, params: SamplingParams, grammar: str | None
    ) -> None:
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
        if grammar is not None:
            native = llama_cpp.llama_sampler_init_grammar(vocab, grammar.encode(), b"root")
            if not native:
                raise GrammarError("llama.cpp rejected a generated grammar")
            self._add(native)
        if params.temperature <= 0.0:
            self._add(llama_cpp.llama_sampler_init_greedy())
            return
        self._add(llama_cpp.llama_sampler_init_temp(params.temperature))
        if params.top_p < 1.0:
            self._add(llama_cpp.llama_sampler_init_top_p(params.top_p, 1))
        self._add(llama_cpp.llama_sampler_init_dist(llama_seed(params.seed)))

    def sample(self, ctx: Any) -> int:
        """Draw (and accept) a token from the logits of the last evaluated position."""
        return int(llama_cpp.llama_sampler_sample(self._chain, ctx, ctypes.c_int32(-1)))

    def close(self) -> None:
        if self._chain is not None:
            llama_cpp.llama_sampler_free(self._chain)
            self._chain = None

    def __enter__(self) -> Sampler:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
