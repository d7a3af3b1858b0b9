"""The typed error tree, mapped to OpenAI error bodies in one place.

Every error a caller can see is an :class:`AirlockError`. Messages are written by
airlock itself and must never contain request or response content (invariant 1):
callers pass metadata only (parameter names, limits, counts, model ids).
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = [
    "AirlockError",
    "AuthenticationError",
    "BadRequestError",
    "BodyTooLargeError",
    "ClientDisconnectedError",
    "ContextLengthExceededError",
    "InsufficientQuotaError",
    "InternalServerError",
    "MethodNotAllowedError",
    "ModelNotFoundError",
    "NotFoundError",
    "PermissionDeniedError",
    "PolicyViolationError",
    "RateLimitError",
    "ServiceUnavailableError",
    "UnsupportedParameterError",
    "UpstreamError",
    "UpstreamTimeoutError",
]


class AirlockError(Exception):
    """Base of every error that becomes an OpenAI-shaped response."""

    status_code: ClassVar[int] = 500
    error_type: ClassVar[str] = "server_error"
    default_code: ClassVar[str | None] = None

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code if code is not None else self.default_code
        self.headers = dict(headers or {})

    def to_body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.error_type,
                "param": self.param,
                "code": self.code,
            }
        }


class BadRequestError(AirlockError):
    status_code = 400
    error_type = "invalid_request_error"


class UnsupportedParameterError(BadRequestError):
    default_code = "unsupported_parameter"


class ContextLengthExceededError(BadRequestError):
    default_code = "context_length_exceeded"

    def __init__(self, *, prompt_tokens: int, max_new_tokens: int, context_window: int) -> None:
        super().__init__(
            f"This model's maximum context length is {context_window} tokens. However, you "
            f"requested {prompt_tokens + max_new_tokens} tokens ({prompt_tokens} in the "
            f"messages, {max_new_tokens} in the completion). Please reduce the length of the "
            "messages or completion.",
            param="messages",
        )
        self.prompt_tokens = prompt_tokens
        self.max_new_tokens = max_new_tokens
        self.context_window = context_window


class AuthenticationError(AirlockError):
    status_code = 401
    error_type = "invalid_request_error"
    default_code = "invalid_api_key"


class PermissionDeniedError(AirlockError):
    status_code = 403
    error_type = "permission_denied"
    default_code = "permission_denied"


class NotFoundError(AirlockError):
    status_code = 404
    error_type = "invalid_request_error"
    default_code = "not_found"


class ModelNotFoundError(NotFoundError):
    default_code = "model_not_found"

    def __init__(self, model: str) -> None:
        super().__init__(
            f"The model '{model}' does not exist or you do not have access to it.",
            param="model",
        )
        self.model = model


class MethodNotAllowedError(AirlockError):
    status_code = 405
    error_type = "invalid_request_error"
    default_code = "method_not_allowed"


class BodyTooLargeError(AirlockError):
    status_code = 413
    error_type = "invalid_request_error"
    default_code = "request_too_large"


class RateLimitError(AirlockError):
    status_code = 429
    error_type = "requests"
    default_code = "rate_limit_exceeded"


class InsufficientQuotaError(AirlockError):
    status_code = 429
    error_type = "insufficient_quota"
    default_code = "insufficient_quota"


class PolicyViolationError(AirlockError):
    """The request may not be served under the configured privacy/region policy."""

    status_code = 403
    error_type = "policy_violation"
    default_code = "policy_violation"


class InternalServerError(AirlockError):
    status_code = 500
    error_type = "server_error"


class UpstreamError(AirlockError):
    """An upstream deployment failed; the upstream's own body is never echoed.

    ``retryable`` says whether another attempt (same or another deployment) may
    succeed; ``retry_after`` is the upstream's ``Retry-After`` in seconds, if any.
    """

    status_code = 502
    error_type = "upstream_error"
    default_code = "upstream_error"

    def __init__(
        self,
        message: str,
        *,
        retryable: bool = False,
        retry_after: float | None = None,
        upstream_status: int | None = None,
        param: str | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message, param=param, code=code)
        self.retryable = retryable
        self.retry_after = retry_after
        self.upstream_status = upstream_status


class UpstreamTimeoutError(UpstreamError):
    status_code = 504
    default_code = "upstream_timeout"


class ServiceUnavailableError(AirlockError):
    status_code = 503
    error_type = "service_unavailable"
    default_code = "service_unavailable"


class ClientDisconnectedError(AirlockError):
    """The client went away before the answer was ready; nobody reads this response
    (status 499, as nginx logs it), but the request is still metered."""

    status_code = 499
    error_type = "client_disconnected"
    default_code = "client_disconnected"

    def __init__(self) -> None:
        super().__init__("The client closed the connection before the response was ready.")
