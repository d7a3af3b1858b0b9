"""A real OpenAI-compatible upstream on loopback whose behaviour is scripted per request.

The server speaks HTTP/1.1 over asyncio streams in a background thread, so a test
controls every byte: normal JSON and SSE answers with usage, added latency, error
statuses with ``Retry-After``, a TCP reset before or in the middle of a stream, a
request that is never answered, malformed JSON, a slow drip of SSE events, a stream
that ends without ``[DONE]``. It records each request and counts connections, so a
test can prove the gateway retried the right number of times and left no connection
behind (a connection it gave up on is closed, which the server sees as an abort).

Scripted faults are consumed in order by ``POST`` requests; once the queue is empty,
``default`` answers. ``GET /v1/models`` is the health endpoint (``health_ok``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "Fault",
    "FaultyUpstream",
    "RecordedRequest",
    "blackhole_listener",
    "drip",
    "error",
    "hang",
    "malformed",
    "ok",
    "rate_limited",
    "reset",
    "slow",
]


@dataclass(frozen=True, slots=True)
class Fault:
    """How to answer one request."""

    status: int = 200
    # Wait this long before sending the response head.
    delay_s: float = 0.0
    headers: tuple[tuple[str, str], ...] = ()
    # Raw body for a non-200 answer; a generic OpenAI error body when None.
    body: bytes | None = None
    # Content pieces in the answer (stream events or words of a JSON answer).
    chunks: int = 3
    # Streams: wait before the first event, and between events (a slow drip).
    first_chunk_delay_s: float = 0.0
    chunk_delay_s: float = 0.0
    # Reset the connection (TCP RST) after this many stream events; 0 = before the head.
    reset_after: int | None = None
    # Read the request, never answer (until the client goes away).
    hang: bool = False
    # 200 with a body (or, in a stream, a first event) that is not valid JSON.
    malformed: bool = False
    # End the stream cleanly but without ``data: [DONE]``.
    omit_done: bool = False
    # In a stream: send an OpenAI error object as the event after this many events.
    error_event_after: int | None = None
    # In a stream: send exactly these bytes instead of the generated events, each piece
    # after its delay (to test SSE framing and keep-alive comments).
    raw: tuple[tuple[float, bytes], ...] | None = None


def ok(**kw: Any) -> Fault:
    return Fault(**kw)


def slow(delay_s: float, **kw: Any) -> Fault:
    return Fault(delay_s=delay_s, **kw)


def error(
    status: int = 500,
    *,
    retry_after: str | None = None,
    body: bytes | None = None,
    headers: tuple[tuple[str, str], ...] = (),
) -> Fault:
    if retry_after is not None:
        headers = (*headers, ("retry-after", retry_after))
    return Fault(status=status, headers=headers, body=body)


def rate_limited(retry_after: str | None = "1") -> Fault:
    return error(429, retry_after=retry_after)


def reset(after: int = 0) -> Fault:
    return Fault(reset_after=after)


def hang() -> Fault:
    return Fault(hang=True)


def malformed() -> Fault:
    return Fault(malformed=True)


def drip(interval_s: float, chunks: int = 5, **kw: Any) -> Fault:
    return Fault(chunk_delay_s=interval_s, chunks=chunks, **kw)


@dataclass(slots=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any] | None
    arrived_at: float
    # "completed", "aborted" (the client left first), "reset", or None while running.
    outcome: str | None = None
    finished_at: float | None = None

    @property
    def stream(self) -> bool:
        return bool(self.body and self.body.get("stream"))

    @property
    def model(self) -> str | None:
        return None if self.body is None else self.body.get("model")


class _ClientGone(Exception):
    """The peer closed the connection while we were answering."""


@dataclass
class _State:
    lock: threading.Lock = field(default_factory=threading.Lock)
    queue: deque[Fault] = field(default_factory=deque)
    default: Fault = field(default_factory=Fault)
    health_ok: bool = True
    health_delay_s: float = 0.0
    requests: list[RecordedRequest] = field(default_factory=list)
    health_checks: int = 0
    open_connections: int = 0
    peak_connections: int = 0
    connections_total: int = 0
    active: int = 0
    peak_active: int = 0


class FaultyUpstream:
    """Run with ``with FaultyUpstream("a") as up:``; point a deployment at ``up.base_url``."""

    def __init__(self, name: str = "up", *, default: Fault | None = None) -> None:
        self.name = name
        self._s = _State()
        if default is not None:
            self._s.default = default
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._counter = 0
        self.port = 0

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> FaultyUpstream:
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(target=loop.run_forever, name=f"upstream-{self.name}")
        self._thread.daemon = True
        self._thread.start()
        fut = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._on_connection, "127.0.0.1", 0), loop
        )
        self._server = fut.result(timeout=10)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    def stop(self) -> None:
        loop, server = self._loop, self._server
        if loop is None or server is None:
            return

        async def shutdown() -> None:
            server.close()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await server.wait_closed()

        asyncio.run_coroutine_threadsafe(shutdown(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        assert self._thread is not None
        self._thread.join(timeout=10)
        loop.close()
        self._loop = self._server = None

    def __enter__(self) -> FaultyUpstream:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    # -- scripting and inspection (called from the test thread) ----------------------

    def script(self, *faults: Fault) -> None:
        """Queue answers for the next POST requests, in order."""
        with self._s.lock:
            self._s.queue.extend(faults)

    def set_default(self, fault: Fault) -> None:
        with self._s.lock:
            self._s.default = fault

    def set_health(self, ok: bool = True, delay_s: float = 0.0) -> None:
        with self._s.lock:
            self._s.health_ok, self._s.health_delay_s = ok, delay_s

    def reset(self) -> None:
        """Forget scripts and records (connections already open stay counted)."""
        with self._s.lock:
            self._s.queue.clear()
            self._s.default = Fault()
            self._s.health_ok, self._s.health_delay_s = True, 0.0
            self._s.requests.clear()
            self._s.health_checks = 0
            self._s.peak_connections = self._s.open_connections
            self._s.peak_active = self._s.active

    @property
    def requests(self) -> list[RecordedRequest]:
        """POST requests received, oldest first."""
        with self._s.lock:
            return [r for r in self._s.requests if r.method == "POST"]

    @property
    def request_count(self) -> int:
        return len(self.requests)

    @property
    def health_checks(self) -> int:
        with self._s.lock:
            return self._s.health_checks

    @property
    def open_connections(self) -> int:
        with self._s.lock:
            return self._s.open_connections

    @property
    def peak_connections(self) -> int:
        with self._s.lock:
            return self._s.peak_connections

    @property
    def connections_total(self) -> int:
        with self._s.lock:
            return self._s.connections_total

    @property
    def active(self) -> int:
        """Responses being produced right now (a hung request counts until dropped)."""
        with self._s.lock:
            return self._s.active

    @property
    def peak_active(self) -> int:
        with self._s.lock:
            return self._s.peak_active

    def pending_scripts(self) -> int:
        with self._s.lock:
            return len(self._s.queue)

    def wait_until(self, predicate: Callable[[FaultyUpstream], bool], timeout: float = 5) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(self):
                return True
            time.sleep(0.02)
        return predicate(self)

    # -- the server (runs on the background loop) -----------------------------------

    async def _on_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)  # type: ignore[arg-type]
        with self._s.lock:
            self._s.open_connections += 1
            self._s.connections_total += 1
            self._s.peak_connections = max(self._s.peak_connections, self._s.open_connections)
        try:
            while await self._serve_one(reader, writer):
                pass
        except (_ClientGone, ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            with self._s.lock:
                self._s.open_connections -= 1
            writer.close()
            self._tasks.discard(task)  # type: ignore[arg-type]

    async def _serve_one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Answer one request; False when the connection is done."""
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return False
        lines = head.decode("latin-1").split("\r\n")
        method, path, _ = lines[0].split(" ", 2)
        headers = {}
        for line in lines[1:]:
            if line:
                k, _, v = line.partition(":")
                headers[k.strip().lower()] = v.strip()
        raw = await reader.readexactly(int(headers.get("content-length", "0")))
        body = json.loads(raw) if raw else None
        rec = RecordedRequest(method, path, headers, body, time.monotonic())
        with self._s.lock:
            self._s.requests.append(rec)
            if method == "POST":
                fault = self._s.queue.popleft() if self._s.queue else self._s.default
                self._s.active += 1
                self._s.peak_active = max(self._s.peak_active, self._s.active)
        keep_alive = headers.get("connection", "").lower() != "close"
        if method == "GET" and path.rstrip("/").endswith("/models"):
            await self._health(reader, writer)
            rec.outcome = "completed"
            return keep_alive
        if method != "POST":
            await _send_json(writer, 404, _error_body("not found"))
            rec.outcome = "completed"
            return keep_alive
        try:
            await self._answer(fault, rec, reader, writer)
            rec.outcome = "completed"
        except _ClientGone:
            rec.outcome = "aborted"
            raise
        except _Reset:
            rec.outcome = "reset"
            return False
        except (ConnectionError, asyncio.CancelledError):
            rec.outcome = rec.outcome or "aborted"
            raise
        finally:
            rec.finished_at = time.monotonic()
            with self._s.lock:
                self._s.active -= 1
        return keep_alive

    async def _health(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with self._s.lock:
            self._s.health_checks += 1
            healthy, delay = self._s.health_ok, self._s.health_delay_s
        if delay:
            await _wait_or_gone(reader, delay)
        if healthy:
            await _send_json(
                writer, 200, {"object": "list", "data": [{"id": self.name, "object": "model"}]}
            )
        else:
            await _send_json(writer, 503, _error_body("unhealthy"))

    async def _answer(
        self,
        fault: Fault,
        rec: RecordedRequest,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        if fault.hang:
            # Wait for the client to give up; a leaked connection would keep us here.
            while await reader.read(1024):
                pass
            raise _ClientGone
        if fault.delay_s:
            await _wait_or_gone(reader, fault.delay_s)
        if fault.reset_after == 0:
            _rst(writer)
        if fault.status != 200:
            body = fault.body if fault.body is not None else _error_body(f"status {fault.status}")
            await _send(writer, fault.status, body, fault.headers)
            return
        self._counter += 1
        n = self._counter
        model = str((rec.body or {}).get("model", "unknown"))
        if rec.stream:
            await self._stream(fault, rec, n, model, reader, writer)
            return
        if fault.malformed:
            await _send(writer, 200, b'{"id": "broken", "choices": [ {not json', fault.headers)
            return
        await _send_json(
            writer, 200, self._complete(rec.path, n, model, fault.chunks), fault.headers
        )

    def _words(self, count: int) -> list[str]:
        return [f"{self.name}{i} " for i in range(count)]

    def _complete(self, path: str, n: int, model: str, chunks: int) -> dict[str, Any]:
        text = "".join(self._words(chunks))
        usage = {"prompt_tokens": 7, "completion_tokens": chunks, "total_tokens": 7 + chunks}
        created = int(time.time())
        if path.endswith("/embeddings"):
            return {
                "object": "list",
                "model": model,
                "data": [{"object": "embedding", "index": 0, "embedding": [0.25, -0.5, 1.0]}],
                "usage": {"prompt_tokens": 3, "total_tokens": 3},
            }
        if path.endswith("/chat/completions"):
            return {
                "id": f"chatcmpl-{self.name}-{n}",
                "object": "chat.completion",
                "created": created,
                "model": model,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": text},
                        "finish_reason": "stop",
                    }
                ],
                "usage": usage,
            }
        return {
            "id": f"cmpl-{self.name}-{n}",
            "object": "text_completion",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "text": text, "logprobs": None, "finish_reason": "stop"}],
            "usage": usage,
        }

    def _events(
        self, rec: RecordedRequest, n: int, model: str, chunks: int
    ) -> list[dict[str, Any]]:
        created = int(time.time())
        chat = rec.path.endswith("/chat/completions")
        base: dict[str, Any] = (
            {"id": f"chatcmpl-{self.name}-{n}", "object": "chat.completion.chunk"}
            if chat
            else {"id": f"cmpl-{self.name}-{n}", "object": "text_completion"}
        )
        base.update(created=created, model=model)

        def choice(text: str | None, finish: str | None, role: bool = False) -> dict[str, Any]:
            if not chat:
                return {"index": 0, "text": text or "", "logprobs": None, "finish_reason": finish}
            delta: dict[str, Any] = {"role": "assistant"} if role else {}
            if text is not None:
                delta["content"] = text
            return {"index": 0, "delta": delta, "finish_reason": finish}

        events = [{**base, "choices": [choice("", None, role=True)]}] if chat else []
        events += [{**base, "choices": [choice(w, None)]} for w in self._words(chunks)]
        events.append({**base, "choices": [choice(None if chat else "", "stop")]})
        opts = (rec.body or {}).get("stream_options") or {}
        if opts.get("include_usage"):
            usage = {"prompt_tokens": 7, "completion_tokens": chunks, "total_tokens": 7 + chunks}
            events.append({**base, "choices": [], "usage": usage})
        return events

    async def _stream(
        self,
        fault: Fault,
        rec: RecordedRequest,
        n: int,
        model: str,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        head = (
            "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n"
            "transfer-encoding: chunked\r\n"
            + "".join(f"{k}: {v}\r\n" for k, v in fault.headers)
            + "\r\n"
        )
        writer.write(head.encode("latin-1"))
        await _drain(writer)
        if fault.raw is not None:
            for delay, piece in fault.raw:
                if delay:
                    await _wait_or_gone(reader, delay)
                writer.write(b"%x\r\n%b\r\n" % (len(piece), piece))
                await _drain(writer)
            writer.write(b"0\r\n\r\n")
            await _drain(writer)
            return
        payloads = [json.dumps(e).encode() for e in self._events(rec, n, model, fault.chunks)]
        if fault.malformed:
            payloads[0] = b'{"id": "broken", "choices": [ {not json'
        if fault.error_event_after is not None:
            payloads.insert(fault.error_event_after, fault.body or _error_body("mid-stream"))
        if not fault.omit_done:
            payloads.append(b"[DONE]")
        if fault.first_chunk_delay_s:
            await _wait_or_gone(reader, fault.first_chunk_delay_s)
        for i, data in enumerate(payloads):
            if fault.reset_after is not None and i == fault.reset_after:
                _rst(writer)
            if i and fault.chunk_delay_s:
                await _wait_or_gone(reader, fault.chunk_delay_s)
            event = b"data: " + data + b"\n\n"
            writer.write(b"%x\r\n%b\r\n" % (len(event), event))
            await _drain(writer)
        if fault.reset_after is not None and fault.reset_after >= len(payloads):
            _rst(writer)
        writer.write(b"0\r\n\r\n")
        await _drain(writer)


class _Reset(Exception):
    """We reset the connection on purpose."""


def _rst(writer: asyncio.StreamWriter) -> None:
    # SO_LINGER with a zero timeout makes close() send RST instead of FIN.
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()
    raise _Reset


async def _drain(writer: asyncio.StreamWriter) -> None:
    if writer.is_closing():
        raise _ClientGone
    try:
        await writer.drain()
    except ConnectionError:
        raise _ClientGone from None


async def _wait_or_gone(reader: asyncio.StreamReader, seconds: float) -> None:
    """Sleep, but notice at once when the client closes the connection."""
    try:
        data = await asyncio.wait_for(reader.read(1), timeout=seconds)
    except TimeoutError:
        return
    if not data:
        raise _ClientGone
    # A client does not send anything while it waits for our answer.
    raise AssertionError("unexpected bytes from the client mid-response")


def _error_body(message: str) -> bytes:
    return json.dumps(
        {"error": {"message": message, "type": "server_error", "param": None, "code": None}}
    ).encode()


async def _send(
    writer: asyncio.StreamWriter,
    status: int,
    body: bytes,
    headers: tuple[tuple[str, str], ...] = (),
) -> None:
    head = (
        f"HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n"
        + "".join(f"{k}: {v}\r\n" for k, v in headers)
        + "\r\n"
    )
    writer.write(head.encode("latin-1") + body)
    await _drain(writer)


async def _send_json(
    writer: asyncio.StreamWriter,
    status: int,
    obj: dict[str, Any] | bytes,
    headers: tuple[tuple[str, str], ...] = (),
) -> None:
    body = obj if isinstance(obj, bytes) else json.dumps(obj).encode()
    await _send(writer, status, body, headers)


@contextlib.contextmanager
def blackhole_listener() -> Any:
    """A loopback port whose accept queue is full, so new connects never complete.

    The kernel drops SYNs to a listener with a full backlog, which is what a
    connect timeout looks like from the client. Yields the port.
    """
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = int(listener.getsockname()[1])
    fillers: list[socket.socket] = []
    try:
        # Fill the accept queue (backlog 0 still holds one or two) without accepting.
        for _ in range(4):
            s = socket.socket()
            s.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                s.connect(("127.0.0.1", port))
            fillers.append(s)
        time.sleep(0.05)
        yield port
    finally:
        for s in fillers:
            s.close()
        listener.close()
