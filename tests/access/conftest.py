"""Shared fixtures for access tests: anyio backend, a real local JWKS server, real Redis."""

from __future__ import annotations

import json
import os
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError

# The python-svc machine runs Redis here before every run; override only to test failures.
REDIS_URL = os.environ.get("AIRLOCK_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@dataclass
class IdpState:
    """What the fake identity provider serves; tests mutate it between requests."""

    jwks: dict[str, Any] = field(default_factory=lambda: {"keys": []})
    discovery: dict[str, Any] | None = None
    fail: bool = False
    hits: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, path: str) -> int:
        with self.lock:
            return self.hits.get(path, 0)


@dataclass
class IdpServer:
    base_url: str
    state: IdpState

    @property
    def jwks_url(self) -> str:
        return self.base_url + "/jwks.json"


def _handler(state: IdpState) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            with state.lock:
                state.hits[self.path] = state.hits.get(self.path, 0) + 1
                fail = state.fail
                if self.path == "/jwks.json":
                    body: Any = state.jwks
                elif self.path == "/.well-known/openid-configuration":
                    body = state.discovery
                else:
                    body = None
            if fail:
                self.send_response(500)
                self.end_headers()
                return
            if body is None:
                self.send_response(404)
                self.end_headers()
                return
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            return  # keep test output quiet

    return Handler


@pytest.fixture
def idp() -> Iterator[IdpServer]:
    """A real HTTP server on a loopback port serving a JWKS and a discovery document."""
    state = IdpState()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield IdpServer(base_url=f"http://127.0.0.1:{server.server_address[1]}", state=state)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


class FakeClock:
    """A monotonic clock the test moves by hand (no sleeping, no timing races)."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def _redis_unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"Redis at {REDIS_URL} is required in CI: {reason}")
    pytest.skip(f"Redis at {REDIS_URL} not reachable: {reason}")


@pytest.fixture
async def redis_client() -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        await client.ping()
    except (RedisConnectionError, OSError) as exc:
        await client.aclose()
        _redis_unavailable(type(exc).__name__)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
async def redis_prefix(redis_client: aioredis.Redis) -> AsyncIterator[str]:
    """A key prefix unique to this test; its keys are deleted afterwards."""
    prefix = f"airlock-test:{uuid.uuid4().hex}:"
    yield prefix
    keys = [key async for key in redis_client.scan_iter(match=prefix + "*")]
    if keys:
        await redis_client.delete(*keys)
