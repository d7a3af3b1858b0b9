"""Chat completions through the real gateway with the official ``openai`` client."""

from __future__ import annotations

import json

import jsonschema
import openai
import pytest

from tests.support.spec import assert_valid

MODEL = "smollm2"
HELLO = [{"role": "user", "content": "Say hello in five words."}]


def test_list_and_retrieve_models(client: openai.OpenAI) -> None:
    page = client.models.list()
    ids = {m.id for m in page.data}
    assert {"smollm2", "all-minilm-l6-v2"} <= ids
    assert_valid(page.model_dump(), "ListModelsResponse")
    model = client.models.retrieve("smollm2")
    assert model.id == "smollm2"
    assert_valid(model.model_dump(), "Model")


def test_plain_chat(client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model=MODEL, messages=HELLO, max_tokens=24, temperature=0
    )
    assert raw.headers["x-request-id"]
    assert raw.headers["x-airlock-route"] == MODEL
    assert raw.headers["x-airlock-route-reason"]
    resp = raw.parse()
    assert_valid(json.loads(raw.text), "CreateChatCompletionResponse")
    choice = resp.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content
    assert choice.finish_reason in {"stop", "length"}
    assert resp.usage is not None
    assert resp.usage.prompt_tokens > 5
    assert 0 < resp.usage.completion_tokens <= 24
    assert resp.usage.total_tokens == resp.usage.prompt_tokens + resp.usage.completion_tokens
    assert resp.model == MODEL


def test_streaming_chat_with_usage_chunk(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model=MODEL,
        messages=HELLO,
        max_tokens=20,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    for c in chunks:
        assert_valid(c.model_dump(exclude_unset=True), "CreateChatCompletionStreamResponse")
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text
    finals = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert len(finals) == 1
    assert finals[0].choices[0].finish_reason in {"stop", "length"}
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens > 0
    assert len({c.id for c in chunks}) == 1


def test_streaming_without_usage_has_no_usage_chunk(client: openai.OpenAI) -> None:
    chunks = list(
        client.chat.completions.create(
            model=MODEL, messages=HELLO, max_tokens=8, temperature=0, stream=True
        )
    )
    assert all(c.choices for c in chunks)
    assert all(c.usage is None for c in chunks)


def test_stream_and_plain_agree_at_temperature_zero(client: openai.OpenAI) -> None:
    plain = client.chat.completions.create(
        model=MODEL, messages=HELLO, max_tokens=16, temperature=0
    )
    streamed = "".join(
        c.choices[0].delta.content or ""
        for c in client.chat.completions.create(
            model=MODEL, messages=HELLO, max_tokens=16, temperature=0, stream=True
        )
        if c.choices
    )
    assert plain.choices[0].message.content == streamed


def test_max_tokens_gives_length(client: openai.OpenAI) -> None:
    resp = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Write a long story about a dragon."}],
        max_completion_tokens=5,
    )
    assert resp.choices[0].finish_reason == "length"
    assert resp.usage is not None
    assert resp.usage.completion_tokens == 5


def test_stop_sequence_is_not_emitted(client: openai.OpenAI) -> None:
    messages = [{"role": "user", "content": "Count from 1 to 10, separated by commas."}]
    base = client.chat.completions.create(
        model=MODEL, messages=messages, max_tokens=40, temperature=0
    )
    full = base.choices[0].message.content or ""
    assert "3" in full
    stop = "3"
    resp = client.chat.completions.create(
        model=MODEL, messages=messages, max_tokens=40, temperature=0, stop=[stop]
    )
    out = resp.choices[0].message.content or ""
    assert stop not in out
    assert resp.choices[0].finish_reason == "stop"
    assert full.startswith(out)
    streamed = "".join(
        c.choices[0].delta.content or ""
        for c in client.chat.completions.create(
            model=MODEL, messages=messages, max_tokens=40, temperature=0, stop=stop, stream=True
        )
        if c.choices
    )
    assert streamed == out


def test_seed_makes_sampling_repeatable(client: openai.OpenAI) -> None:
    args = {"model": MODEL, "messages": HELLO, "max_tokens": 16, "temperature": 1.0, "seed": 42}
    a = client.chat.completions.create(**args)  # type: ignore[call-overload]
    # Whatever the engine's KV cache holds before (the same prompt, another prompt, the
    # same prompt unseeded), the seeded draw is the same.
    b = client.chat.completions.create(**args)  # type: ignore[call-overload]
    client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Name a colour."}], max_tokens=3
    )
    c = client.chat.completions.create(**args)  # type: ignore[call-overload]
    client.chat.completions.create(model=MODEL, messages=HELLO, max_tokens=3)
    d = client.chat.completions.create(**args)  # type: ignore[call-overload]
    texts = {r.choices[0].message.content for r in (a, b, c, d)}
    assert len(texts) == 1, texts


def test_unknown_fields_are_ignored(client: openai.OpenAI) -> None:
    resp = client.chat.completions.create(
        model=MODEL,
        messages=HELLO,
        max_tokens=4,
        extra_body={"some_future_field": {"nested": True}, "store": False},
    )
    assert resp.choices[0].message.content is not None


def test_context_length_exceeded(client: openai.OpenAI) -> None:
    long_text = "word " * 12000
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": long_text}], max_tokens=10
        )
    assert info.value.code == "context_length_exceeded"
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": long_text}],
            max_tokens=10,
            stream=True,
        )
    assert info.value.code == "context_length_exceeded"


JSON_PROMPTS = [
    "Give me a JSON object describing a cat with name and age.",
    "Return JSON with keys city and country for Paris.",
    "Produce a JSON object listing three colors.",
    "Describe a book as JSON: title, author, year.",
    "JSON please: a user profile with username and email.",
    "Make a JSON object with a key 'ok' set to true.",
    "Return the numbers one to three as a JSON object.",
    "Output a JSON object for a car: make, model.",
    "Give a JSON object with a greeting message.",
    "Create JSON describing the weather today.",
    "Return a JSON object of a product with price.",
    "A JSON object with fields x and y for a point.",
    "Summarise 'the sky is blue' as JSON.",
    "Give JSON: a recipe with a name and ingredients.",
    "Return JSON for a movie with title and rating.",
    "Make a JSON object mapping 'a' to 1 and 'b' to 2.",
    "JSON object describing a dog.",
    "Return a JSON object with an empty list called items.",
    "Provide a JSON object with a nested object called meta.",
    "Represent a person named Ada as a JSON object.",
]


@pytest.mark.parametrize("prompt", JSON_PROMPTS)
def test_json_mode_always_parses(client: openai.OpenAI, prompt: str) -> None:
    resp = client.chat.completions.create(
        model=MODEL,
        messages=[
            {"role": "system", "content": "You answer in JSON."},
            {"role": "user", "content": prompt},
        ],
        response_format={"type": "json_object"},
        max_tokens=200,
    )
    choice = resp.choices[0]
    assert choice.finish_reason == "stop"
    assert isinstance(json.loads(choice.message.content or ""), dict)


PERSON_SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "age": {"type": "integer", "minimum": 0},
        "role": {"type": "string", "enum": ["admin", "user", "guest"]},
        "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 3},
    },
    "required": ["name", "age", "role"],
    "additionalProperties": False,
}


@pytest.mark.parametrize(
    "prompt",
    [
        "Alice is 30 and an admin.",
        "Create a guest user called Bob aged 12 with tag 'new'.",
        "Invent a user.",
        "Carol, age 45, regular user, tags: finance, eu.",
        "Dave is an admin of 60.",
    ],
)
def test_json_schema_always_validates(client: openai.OpenAI, prompt: str) -> None:
    resp = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": f"Extract the person as JSON. {prompt}"}],
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "person", "schema": PERSON_SCHEMA, "strict": True},
        },
        max_tokens=150,
    )
    choice = resp.choices[0]
    assert choice.finish_reason == "stop"
    jsonschema.validate(json.loads(choice.message.content or ""), PERSON_SCHEMA)


def test_json_schema_streamed_validates(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Extract: Erin is 22, a user."}],
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "person", "schema": PERSON_SCHEMA},
        },
        max_tokens=150,
        stream=True,
    )
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    jsonschema.validate(json.loads(text), PERSON_SCHEMA)
