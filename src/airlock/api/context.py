"""The per-request context every stage reads and fills in (metadata only)."""

from __future__ import annotations

import re
import secrets
import time
from dataclasses import dataclass, field

from airlock.access.limits import Reservation
from airlock.access.principal import Principal
from airlock.protocol.responses import ChatCompletion, Completion

__all__ = ["RequestContext", "new_request_id", "sane_request_id"]

_SANE_ID = re.compile(r"^[A-Za-z0-9._:-]{8,128}$")


def new_request_id() -> str:
    return "req_" + secrets.token_hex(12)


def sane_request_id(value: str | None) -> str | None:
    """A caller's ``x-request-id`` is honoured only when it cannot carry content."""
    if value and _SANE_ID.match(value):
        return value
    return None


@dataclass(slots=True)
class RequestContext:
    request_id: str
    method: str
    path: str
    started: float = field(default_factory=time.perf_counter)
    endpoint: str | None = None
    principal: Principal | None = None
    requested_model: str | None = None
    served_model: str | None = None
    deployment: str | None = None
    provider: str | None = None
    tier: str | None = None
    region: str | None = None
    route_reason: str | None = None
    # Set when the request reached the router: from then on it is metered (one audit
    # record and one ledger row), whatever happens next.
    routed: bool = False
    sensitive: bool = False
    entity_counts: dict[str, int] = field(default_factory=dict)
    reservation: Reservation | None = None
    stream: bool = False
    status: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str | None = None
    error_type: str | None = None
    first_token_at: float | None = None
    unknown_fields: tuple[str, ...] = ()

    def answered(self, result: ChatCompletion | Completion) -> None:
        """Take the metadata of a complete (non-streamed) answer."""
        self.first_token_at = time.perf_counter()
        if result.usage is not None:
            self.prompt_tokens = result.usage.prompt_tokens
            self.completion_tokens = result.usage.completion_tokens
        if result.choices:
            self.finish_reason = result.choices[0].finish_reason

    def elapsed_ms(self) -> float:
        return round((time.perf_counter() - self.started) * 1000, 2)

    def ttft_ms(self) -> float | None:
        if self.first_token_at is None:
            return None
        return round((self.first_token_at - self.started) * 1000, 2)
