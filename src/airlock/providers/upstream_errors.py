"""Mapping an upstream's HTTP failure to airlock's typed errors, without its body.

Upstream error bodies can quote the prompt (invariant 1), so only two short fields are
ever taken from them: ``code`` and ``param``, and only values on OpenAI's own lists.
"""

from __future__ import annotations

import math
from typing import Any

import httpx
import orjson

from airlock.errors import AirlockError, BadRequestError, UpstreamError, UpstreamTimeoutError
from airlock.protocol.vocabulary import OPENAI_ERROR_CODES, known_param_path

__all__ = [
    "DeploymentBusyError",
    "UpstreamRateLimitedError",
    "error_object",
    "from_exception",
    "from_response",
    "retry_after_seconds",
]

_RETRYABLE = {408, 409, 425, 429, 500, 502, 503, 504, 529}


class UpstreamRateLimitedError(UpstreamError):
    """The upstream said 429. Passed on as 429 (with its Retry-After) once no other
    deployment could take the request, so clients back off instead of hammering."""

    status_code = 429
    default_code = "upstream_rate_limited"


class DeploymentBusyError(UpstreamError):
    """Every connection airlock may open to this deployment (``max_concurrency``) stayed
    busy for the whole wait. Local saturation, not a sick upstream: it is retried
    elsewhere but does not count against the deployment's circuit breaker."""

    status_code = 503
    error_type = "service_unavailable"
    default_code = "deployment_busy"


def _tell_client_when(err: UpstreamError) -> UpstreamError:
    # The hint is the upstream's own number of seconds; only that number is copied.
    if err.retry_after is not None:
        err.headers["retry-after"] = str(max(1, math.ceil(err.retry_after)))
    return err


def retry_after_seconds(headers: httpx.Headers) -> float | None:
    value = headers.get("retry-after-ms")
    if value is not None:
        try:
            return max(0.0, float(value) / 1000)
        except ValueError:
            return None
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # HTTP-date form: treated as "no hint"


def error_object(body: bytes) -> dict[str, Any] | None:
    """The ``error`` object of an upstream's JSON error body, if it has one. Read only
    for the few fields callers check against closed lists, never to be passed on."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    err = data.get("error") if isinstance(data, dict) else None
    return err if isinstance(err, dict) else None


def _safe_fields(body: bytes) -> tuple[str | None, str | None]:
    err = error_object(body)
    if err is None:
        return None, None
    code, param = err.get("code"), err.get("param")
    # Closed lists only: an upstream may put the caller's text into either field.
    code = code if isinstance(code, str) and code in OPENAI_ERROR_CODES else None
    param = param if isinstance(param, str) and known_param_path(param) else None
    return code, param


def from_response(
    status: int, headers: httpx.Headers, body: bytes, deployment: str
) -> AirlockError:
    code, param = _safe_fields(body)
    if status in (400, 413, 422):
        # The caller's request was refused: their problem, reported as such.
        return BadRequestError(
            f"The upstream deployment '{deployment}' rejected the request as invalid "
            f"(HTTP {status}{', code ' + code if code else ''}).",
            param=param,
            code=code or "upstream_rejected",
        )
    retryable = status in _RETRYABLE or status in (401, 403, 404)
    kind = UpstreamRateLimitedError if status == 429 else UpstreamError
    return _tell_client_when(
        kind(
            f"The upstream deployment '{deployment}' failed with HTTP {status}.",
            retryable=retryable,
            retry_after=retry_after_seconds(headers),
            upstream_status=status,
        )
    )


def from_exception(exc: Exception, deployment: str) -> AirlockError:
    if isinstance(exc, httpx.PoolTimeout):
        busy = DeploymentBusyError(
            f"All connections to the upstream deployment '{deployment}' are busy "
            "(its max_concurrency); try again shortly.",
            retryable=True,
        )
        busy.headers["retry-after"] = "1"
        return busy
    if isinstance(exc, httpx.TimeoutException):
        what = "connecting to" if isinstance(exc, httpx.ConnectTimeout) else "waiting for"
        return UpstreamTimeoutError(
            f"Timed out {what} the upstream deployment '{deployment}'.", retryable=True
        )
    if isinstance(exc, httpx.ConnectError):
        return UpstreamError(
            f"Could not connect to the upstream deployment '{deployment}'.",
            retryable=True,
            code="upstream_unreachable",
        )
    if isinstance(exc, httpx.HTTPError):
        return UpstreamError(
            f"The connection to the upstream deployment '{deployment}' failed "
            f"({type(exc).__name__}).",
            retryable=True,
        )
    return UpstreamError(
        f"The upstream deployment '{deployment}' sent a response airlock could not read.",
        retryable=True,
        code="upstream_malformed",
    )
