"""A real identity provider on loopback: serves a JWKS and a discovery document."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["IdpServer", "IdpState", "running_idp"]


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


@contextmanager
def running_idp() -> Iterator[IdpServer]:
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
