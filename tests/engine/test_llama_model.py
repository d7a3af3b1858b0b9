"""LlamaModel.load_prompt: prefix reuse, and the repeatable path that skips it."""

from __future__ import annotations

import ctypes

import llama_cpp

from airlock.engine.llama_model import LlamaModel
from airlock.engine.types import ChatTurn

# Long enough (over 32 tokens) that llama.cpp evaluates the full prompt with its batched
# kernels, whose rounding differs from the one-token kernel used for a cached prefix.
_TEXT = "Describe a harbour at dawn, with the boats, the gulls and the light on the water."


def _logits(model: LlamaModel) -> list[float]:
    ptr = llama_cpp.llama_get_logits_ith(model.ctx, -1)
    return list(ctypes.cast(ptr, ctypes.POINTER(ctypes.c_float))[: model.n_vocab])


def _greedy(model: LlamaModel, n: int) -> list[int]:
    out: list[int] = []
    for _ in range(n):
        row = _logits(model)
        token = max(range(len(row)), key=row.__getitem__)
        out.append(token)
        model.eval([token], before_decode=lambda: None)
    return out


def _prompt(model: LlamaModel) -> list[int]:
    return model.tokenize(model.template.render((ChatTurn("user", _TEXT),)))


def test_a_reused_prefix_skips_the_cached_tokens(llama_model: LlamaModel) -> None:
    prompt = _prompt(llama_model)
    assert llama_model.load_prompt(prompt, lambda: False)
    _greedy(llama_model, 5)
    evaluated: list[int] = []
    original = llama_model.eval

    def counting(tokens: list[int], **kwargs: object) -> None:
        evaluated.extend(tokens)
        original(tokens)

    llama_model.eval = counting  # type: ignore[method-assign]
    try:
        assert llama_model.load_prompt(prompt, lambda: False)
        assert evaluated == prompt[-1:]  # only the last token, for its logits
        evaluated.clear()
        assert llama_model.load_prompt(prompt, lambda: False, reuse_prefix=False)
        assert evaluated == prompt
    finally:
        del llama_model.eval
    assert llama_model.n_past == len(prompt)


def test_without_reuse_the_same_prompt_gives_the_same_logits_whatever_was_cached(
    llama_model: LlamaModel,
) -> None:
    prompt = _prompt(llama_model)
    assert len(prompt) > 32
    assert llama_model.load_prompt(prompt, lambda: False, reuse_prefix=False)
    first = _logits(llama_model)
    reference = _greedy(llama_model, 24)
    other = llama_model.tokenize(llama_model.template.render((ChatTurn("user", "Hi there."),)))
    for before in (prompt, other, prompt[:10]):
        assert llama_model.load_prompt(before, lambda: False)
        _greedy(llama_model, 3)
        assert llama_model.load_prompt(prompt, lambda: False, reuse_prefix=False)
        assert _logits(llama_model) == first
        assert _greedy(llama_model, 24) == reference
