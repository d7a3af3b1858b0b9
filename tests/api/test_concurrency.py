"""Many streams at once, /health stays responsive, disconnects free the engine."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import httpx
import openai
import pytest

from tests.support.server import GatewayProcess


async def _stream_one(client: openai.AsyncOpenAI, i: int) -> tuple[str, str | None]:
    stream = await client.chat.completions.create(
        model="smollm2",
        messages=[{"role": "user", "content": f"Name a fruit. Request {i}."}],
        max_tokens=12,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    text, finish, usage = [], None, None
    async for chunk in stream:
        if chunk.choices:
            text.append(chunk.choices[0].delta.content or "")
            finish = chunk.choices[0].finish_reason or finish
        if chunk.usage:
            usage = chunk.usage
    assert usage is not None
    assert usage.completion_tokens > 0
    return "".join(text), finish


def test_sixteen_concurrent_streams_and_health(
    gateway: GatewayProcess, aclient_factory: Callable[[], openai.AsyncOpenAI]
) -> None:
    async def main() -> None:
        client = aclient_factory()
        done = asyncio.Event()
        health_codes: list[int] = []

        async def poll_health() -> None:
            async with httpx.AsyncClient(base_url=gateway.base_url, timeout=5) as http:
                while not done.is_set():
                    # A 5 s timeout: a blocked event loop would fail this request.
                    health_codes.append((await http.get("/health")).status_code)
                    await asyncio.sleep(0.1)

        poller = asyncio.create_task(poll_health())
        results = await asyncio.gather(*(_stream_one(client, i) for i in range(16)))
        done.set()
        await poller
        await client.close()
        assert len(results) == 16
        for text, finish in results:
            assert text
            assert finish in {"stop", "length"}
        assert len(health_codes) >= 3
        assert set(health_codes) == {200}

    asyncio.run(main())


def test_client_disconnect_mid_stream_frees_the_engine(
    gateway: GatewayProcess, client: openai.OpenAI
) -> None:
    # A generation that would take far longer than the follow-up's time limit if it
    # kept running after the client left (~100 tokens/s here).
    with httpx.stream(
        "POST",
        gateway.api_base + "/chat/completions",
        headers={"authorization": f"Bearer {gateway.master_key}"},
        json={
            "model": "smollm2",
            "messages": [{"role": "user", "content": "Write a very long essay about rivers."}],
            "max_tokens": 3000,
            "stream": True,
        },
        timeout=30,
    ) as resp:
        assert resp.status_code == 200
        lines = resp.iter_lines()
        got = [next(lines) for _ in range(6)]
        assert any(line.startswith("data: ") for line in got)
    started = time.monotonic()
    follow = openai.OpenAI(
        base_url=gateway.api_base, api_key=gateway.master_key, timeout=15, max_retries=0
    )
    resp2 = follow.chat.completions.create(
        model="smollm2", messages=[{"role": "user", "content": "Hi"}], max_tokens=5
    )
    assert resp2.choices[0].message.content is not None
    assert time.monotonic() - started < 15


@pytest.mark.parametrize("n", [3])
def test_sequential_requests_after_disconnects(client: openai.OpenAI, n: int) -> None:
    for _ in range(n):
        stream = client.chat.completions.create(
            model="smollm2",
            messages=[{"role": "user", "content": "Tell me about the sea."}],
            max_tokens=400,
            stream=True,
        )
        next(iter(stream))
        stream.close()
    resp = client.chat.completions.create(
        model="smollm2", messages=[{"role": "user", "content": "Hi"}], max_tokens=3
    )
    assert resp.usage is not None
    assert resp.usage.completion_tokens >= 1
