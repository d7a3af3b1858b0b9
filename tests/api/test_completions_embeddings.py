"""``/v1/completions`` and ``/v1/embeddings`` through the real gateway."""

from __future__ import annotations

import base64
import json

import numpy as np
import openai
import pytest

from tests.support.spec import assert_valid


def test_completion(client: openai.OpenAI) -> None:
    raw = client.completions.with_raw_response.create(
        model="smollm2", prompt="The capital of France is", max_tokens=8, temperature=0
    )
    assert_valid(json.loads(raw.text), "CreateCompletionResponse")
    resp = raw.parse()
    assert resp.choices[0].text
    assert resp.choices[0].finish_reason in {"stop", "length"}
    assert resp.usage is not None
    assert resp.usage.completion_tokens > 0


def test_completion_stream_with_usage(client: openai.OpenAI) -> None:
    chunks = list(
        client.completions.create(
            model="smollm2",
            prompt="Once upon a time",
            max_tokens=10,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].text for c in chunks if c.choices)
    assert text
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 10


def test_embeddings_float_and_base64_agree(client: openai.OpenAI) -> None:
    texts = ["The cat sits on the mat.", "A feline rests on a rug.", "Quarterly tax filing."]
    floats = client.embeddings.create(model="all-minilm-l6-v2", input=texts)
    assert_valid(floats.model_dump(), "CreateEmbeddingResponse")
    assert [d.index for d in floats.data] == [0, 1, 2]
    vecs = np.array([d.embedding for d in floats.data], dtype=np.float32)
    assert vecs.shape == (3, 384)
    assert np.allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-3)
    assert vecs[0] @ vecs[1] > vecs[0] @ vecs[2]
    assert floats.usage.prompt_tokens > 0

    raw = client.embeddings.with_raw_response.create(
        model="all-minilm-l6-v2", input=texts, encoding_format="base64"
    )
    body = raw.http_response.json()
    decoded = np.array(
        [np.frombuffer(base64.b64decode(d["embedding"]), dtype="<f4") for d in body["data"]]
    )
    assert np.allclose(decoded, vecs, atol=1e-6)


def test_embeddings_token_input(client: openai.OpenAI) -> None:
    resp = client.embeddings.create(model="all-minilm-l6-v2", input=[[101, 7592, 102]])
    assert len(resp.data[0].embedding) == 384


def test_embeddings_too_long_is_rejected(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.embeddings.create(model="all-minilm-l6-v2", input="word " * 2000)
    assert info.value.code == "context_length_exceeded"
