"""Pieces shared by several endpoint models."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool

__all__ = [
    "LogitBias",
    "Penalty",
    "RequestModel",
    "StopParam",
    "StreamOptions",
    "normalise_stop",
    "parse_logit_bias",
]

Penalty = Annotated[float, Field(ge=-2.0, le=2.0)]


def _check_logit_bias(value: dict[str, float] | None) -> dict[str, float] | None:
    for key in value or {}:
        if not key.isdigit():
            raise ValueError("keys must be token ids (non-negative integers as strings)")
    return value


# OpenAI takes token ids as JSON object keys (strings); biases are in [-100, 100].
LogitBias = Annotated[
    dict[str, Annotated[float, Field(ge=-100, le=100)]] | None,
    AfterValidator(_check_logit_bias),
]


def _check_stop(value: str | list[str] | None) -> str | list[str] | None:
    if isinstance(value, list) and len(value) > 4:
        raise ValueError("at most 4 stop sequences are allowed")
    return value


StopParam = Annotated[str | list[str] | None, AfterValidator(_check_stop)]


class RequestModel(BaseModel):
    """Base of request bodies: unknown fields are accepted and ignored, like OpenAI."""

    model_config = ConfigDict(extra="allow")

    def unknown_fields(self) -> list[str]:
        """Names (never values) of fields this model does not know."""
        return sorted((self.model_extra or {}).keys())


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")

    include_usage: StrictBool = False


def normalise_stop(stop: str | list[str] | None) -> tuple[str, ...]:
    if stop is None:
        return ()
    items = [stop] if isinstance(stop, str) else stop
    return tuple(s for s in items if s)


def parse_logit_bias(value: dict[str, float] | None) -> dict[int, float] | None:
    if not value:
        return None
    return {int(k): float(v) for k, v in value.items()}
