"""The engine end to end with the real SmolLM2 model: text, JSON, sampling parameters."""

from __future__ import annotations

import json
from collections import Counter

import jsonschema
import pytest

from airlock.engine.json_grammar import json_object_grammar
from airlock.engine.llama_engine import EmbeddedEngine
from airlock.engine.llama_model import LlamaModel
from airlock.engine.types import (
    ChatJob,
    ChatTurn,
    CompletionJob,
    JsonObjectFormat,
    JsonSchemaFormat,
    SamplingParams,
)
from tests.engine.conftest import grammar_accepts
from tests.engine.helpers import run

JSON_PROMPTS = [
    "Describe a cat as a JSON object.",
    "Give me a JSON object with the keys name and age for a fictional person.",
    "Return the capital of France as JSON.",
    "List three fruits in a JSON object.",
    "Create a JSON object describing a car.",
    "Output a JSON object with your favourite colour.",
    "Summarise the weather today as JSON.",
    "Make a JSON object for a book with title and author.",
    "Represent the number seven in JSON with a key called value.",
    "Give a JSON object describing a planet.",
    "What is 2+2? Answer in JSON.",
    "Produce a JSON object with a greeting message.",
    "Describe a dog using JSON.",
    "Write a JSON object for a user profile.",
    "Give me a recipe as a JSON object.",
    "Return a JSON object mapping three countries to their capitals.",
    "Describe the sun in JSON.",
    "A JSON object describing a movie, please.",
    "Encode today's date as a JSON object.",
    "Give me a JSON object with a list of two colours.",
]

PERSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 16},
        "age": {"type": "integer"},
        "pets": {"type": "array", "items": {"enum": ["cat", "dog", "fish"]}, "maxItems": 2},
        "city": {"type": ["string", "null"], "maxLength": 12},
    },
    "required": ["name", "age", "pets"],
    "additionalProperties": False,
}


def _chat(prompt: str) -> tuple[ChatTurn, ...]:
    return (ChatTurn("user", prompt),)


def greedy(max_tokens: int, **kwargs: object) -> SamplingParams:
    return SamplingParams(max_tokens=max_tokens, temperature=0.0, **kwargs)  # type: ignore[arg-type]


def test_plain_chat_reports_real_token_counts(engine: EmbeddedEngine) -> None:
    messages = (ChatTurn("user", "Say hello."),)
    result = run(engine, ChatJob(messages, greedy(12)))
    prompt = engine.count_tokens(
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging "
        "Face<|im_end|>\n<|im_start|>user\nSay hello.<|im_end|>\n<|im_start|>assistant\n"
    )
    assert result.finished.prompt_tokens == prompt
    assert 1 <= result.finished.completion_tokens <= 12
    assert result.text
    if result.finished.finish_reason == "stop":
        assert result.finished.completion_tokens < 12


def test_max_tokens_gives_length(engine: EmbeddedEngine) -> None:
    result = run(engine, ChatJob(_chat("Write a long story about a dragon."), greedy(5)))
    assert result.finished.finish_reason == "length"
    assert result.finished.completion_tokens == 5
    # The five tokens are the text: it re-tokenizes to (about) five tokens.
    assert 3 <= engine.count_tokens(result.text) <= 6


def test_json_mode_output_always_parses(engine: EmbeddedEngine, llama_model: LlamaModel) -> None:
    grammar = json_object_grammar()
    closed_by_budget = 0
    for prompt in JSON_PROMPTS:
        job = ChatJob(_chat(prompt), greedy(120), response_format=JsonObjectFormat())
        result = run(engine, job)
        # SmolLM2 rambles inside JSON (long lists, nested objects); when the budget runs
        # short the engine closes the object, so every answer parses and none is cut.
        assert result.finished.finish_reason == "stop"
        assert result.finished.completion_tokens <= 120
        assert isinstance(json.loads(result.text), dict)
        assert grammar_accepts(llama_model, grammar, result.text)
        closed_by_budget += result.finished.completion_tokens >= 120 - 16
    # Measured before closing existed: 8 of these 20 answers ran into max_tokens unparsed.
    assert closed_by_budget >= 1


def test_json_schema_output_always_validates(engine: EmbeddedEngine) -> None:
    fmt = JsonSchemaFormat(name="person", schema=PERSON, strict=True)
    for i, prompt in enumerate(JSON_PROMPTS[:8]):
        sampling = SamplingParams(max_tokens=120, temperature=0.8, seed=i)
        result = run(engine, ChatJob(_chat(prompt), sampling, response_format=fmt))
        # The schema bounds every string and array, so the answer always fits in 120 tokens.
        assert result.finished.finish_reason == "stop"
        jsonschema.validate(json.loads(result.text), PERSON)


def test_stop_sequence_is_never_emitted(engine: EmbeddedEngine) -> None:
    messages = _chat("Count from one to twenty in words, separated by commas.")
    free = run(engine, ChatJob(messages, greedy(40)))
    # Pick a stop string from the middle of what the model really says.
    words = free.text.split()
    assert len(words) >= 6
    stop = " " + words[len(words) // 2]
    cut = free.text.index(stop)
    stopped = run(engine, ChatJob(messages, greedy(40, stop=(stop, "never-appears-xyz"))))
    assert stopped.text == free.text[:cut]
    assert stop not in stopped.text
    assert stopped.finished.finish_reason == "stop"


def test_same_seed_same_output_and_temperature_zero_ignores_seed(engine: EmbeddedEngine) -> None:
    messages = _chat("Invent a name for a new colour.")

    def sample(seed: int, temperature: float = 1.0) -> str:
        job = ChatJob(messages, SamplingParams(max_tokens=16, temperature=temperature, seed=seed))
        return run(engine, job).text

    assert sample(7) == sample(7)
    assert len({sample(s) for s in (1, 2, 3, 4)}) > 1
    assert sample(1, 0.0) == sample(2, 0.0)


def test_tiny_top_p_is_greedy(engine: EmbeddedEngine) -> None:
    messages = _chat("Name a famous scientist.")
    nucleus = SamplingParams(max_tokens=12, temperature=1.5, top_p=1e-6, seed=3)
    assert (
        run(engine, ChatJob(messages, nucleus)).text
        == run(engine, ChatJob(messages, greedy(12))).text
    )


def test_logit_bias_minus_100_bans_a_token(engine: EmbeddedEngine) -> None:
    messages = _chat("Write the word hello five times.")
    free = run(engine, ChatJob(messages, greedy(10)))
    first = engine.tokenize(free.text)[0]
    banned = run(engine, ChatJob(messages, greedy(10, logit_bias={first: -100.0})))
    assert first not in engine.tokenize(banned.text)
    assert banned.text != free.text


def test_logit_bias_plus_100_dominates(engine: EmbeddedEngine) -> None:
    token = engine.tokenize(" banana")[0]
    job = ChatJob(
        _chat("Tell me about the sea."),
        SamplingParams(max_tokens=10, seed=1, logit_bias={token: 100.0}),
    )
    result = run(engine, job)
    assert result.finished.completion_tokens == 10
    assert engine.tokenize(result.text).count(token) >= 9


def test_frequency_penalty_reduces_repetition(engine: EmbeddedEngine) -> None:
    messages = _chat("What is the capital of France?")  # greedy SmolLM2 loops on this one

    def top_count(**kw: float) -> int:
        text = run(engine, ChatJob(messages, greedy(40, **kw))).text
        return Counter(engine.tokenize(text)).most_common(1)[0][1]

    baseline = top_count()
    assert baseline >= 5
    assert top_count(frequency_penalty=2.0) < baseline
    assert top_count(presence_penalty=2.0) < baseline


def test_completion_with_text_and_echo(engine: EmbeddedEngine) -> None:
    prompt = "The three primary colours are"
    plain = run(engine, CompletionJob(prompt, greedy(8)))
    echoed = run(engine, CompletionJob(prompt, greedy(8), echo=True))
    assert echoed.text == prompt + plain.text
    assert plain.finished.prompt_tokens == engine.count_tokens(prompt)


def test_completion_with_token_ids_matches_text(engine: EmbeddedEngine) -> None:
    prompt = "Once upon a time"
    ids = tuple(engine.tokenize(prompt))
    assert (
        run(engine, CompletionJob(ids, greedy(8))).text
        == run(engine, CompletionJob(prompt, greedy(8))).text
    )


def test_max_tokens_none_generates_up_to_the_window(tmp_engine_small: EmbeddedEngine) -> None:
    eos = [0, 2]  # <|endoftext|>, <|im_end|>: never let the model stop by itself
    bias = dict.fromkeys(eos, -100.0)
    job = CompletionJob("Once upon a time", SamplingParams(temperature=0.0, logit_bias=bias))
    result = run(tmp_engine_small, job)
    assert result.finished.finish_reason == "length"
    total = result.finished.prompt_tokens + result.finished.completion_tokens
    assert total == tmp_engine_small.context_window


@pytest.mark.parametrize("n", [1, 3])
def test_empty_completion_prompt_still_generates(engine: EmbeddedEngine, n: int) -> None:
    result = run(engine, CompletionJob("", greedy(n)))
    assert result.finished.completion_tokens <= n
    assert result.finished.prompt_tokens == 1
