"""Turning a raw request body into a typed request, or an OpenAI-shaped 400.

Error messages name the parameter and what is expected; they never echo the value the
caller sent (it may be content, invariant 1).
"""

from __future__ import annotations

from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from airlock.errors import BadRequestError

__all__ = ["decode_json_object", "parse_request"]

M = TypeVar("M", bound=BaseModel)

# Pydantic reports each failed branch of a union; these types only say "it was not
# this branch", so a more specific error is preferred when there is one.
_UNION_NOISE = {"string_type", "list_type", "int_type", "model_type", "dict_type"}


def decode_json_object(body: bytes) -> dict[str, Any]:
    if not body.strip():
        raise BadRequestError(
            "The request body is empty. Send a JSON object (Content-Type: application/json)."
        )
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequestError(
            "We could not parse the JSON body of your request. (HINT: This likely means you "
            "aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, "
            f"but what was sent was not valid JSON: error at position {exc.pos}.)"
        ) from None
    if not isinstance(data, dict):
        raise BadRequestError("The request body must be a JSON object.")
    return data


def _param(loc: tuple[int | str, ...]) -> str | None:
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        elif item.startswith(("function-after[", "function-before[", "function-wrap[")):
            continue
        elif item in {"str", "list[str]", "list[int]", "list[list[int]]", "list[ChatMessage]"}:
            continue  # union branch labels, not parameter names
        elif item[:1].isupper() or "[" in item:
            continue
        else:
            parts.append(("." if parts else "") + item)
    return "".join(parts) or None


def _pick(errors: list[ErrorDetails]) -> ErrorDetails:
    specific = [e for e in errors if e["type"] not in _UNION_NOISE]
    return (specific or errors)[0]


def _message(err: ErrorDetails, param: str | None) -> str:
    kind = err["type"]
    if kind == "missing":
        return f"Missing required parameter: '{param}'."
    if kind == "union_tag_invalid":
        # pydantic's own message repeats the caller's tag; name the allowed ones only.
        expected = (err.get("ctx") or {}).get("expected_tags", "")
        return f"Invalid value for '{param}': 'type' must be one of {expected}."
    msg = err["msg"]
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    if param is None:
        return f"Invalid request: {msg}."
    return f"Invalid value for '{param}': {msg}."


def parse_request(model: type[M], body: bytes | dict[str, Any]) -> M:
    """Validate ``body`` (raw bytes or an already decoded object) as ``model``."""
    data = decode_json_object(body) if isinstance(body, bytes) else body
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        err = _pick(exc.errors(include_url=False, include_input=False))
        param = _param(err["loc"])
        raise BadRequestError(_message(err, param), param=param, code="invalid_value") from None
