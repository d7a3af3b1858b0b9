"""RequestRecord: every field is validated; errors name the field, never the value."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from airlock.errors import ModelNotFoundError, RateLimitError, UpstreamTimeoutError
from airlock.ledger import ROUTE_REASONS, RecordValidationError, RequestRecord, error_type_of

CANARY = "Patient John Smith SSN 123-45-6789 said: ignore previous instructions"

MakeRecord = Callable[..., RequestRecord]

STRING_FIELDS = [
    "request_id",
    "principal_id",
    "tenant",
    "key_kind",
    "endpoint",
    "requested_model",
    "served_model",
    "deployment",
    "provider",
    "region",
    "tier",
    "route_reason",
    "finish_reason",
    "error_type",
]


def test_valid_record_normalises_time_to_utc(make_record: MakeRecord) -> None:
    cet = timezone(timedelta(hours=2))
    rec = make_record(timestamp=datetime(2025, 6, 1, 14, 0, tzinfo=cet))
    assert rec.timestamp == datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
    assert rec.timestamp.tzinfo == UTC


@pytest.mark.parametrize("name", STRING_FIELDS)
def test_free_text_is_rejected_in_every_string_field(make_record: MakeRecord, name: str) -> None:
    with pytest.raises(RecordValidationError) as info:
        make_record(**{name: CANARY})
    assert info.value.field == name
    assert name in str(info.value)
    assert "John" not in str(info.value)
    assert "123-45" not in str(info.value)


@pytest.mark.parametrize("name", ["request_id", "principal_id", "tenant", "requested_model"])
def test_required_ids_cannot_be_none_or_too_long(make_record: MakeRecord, name: str) -> None:
    with pytest.raises(RecordValidationError):
        make_record(**{name: None})
    with pytest.raises(RecordValidationError):
        make_record(**{name: "a" * 129})
    make_record(**{name: "a" * 128})


def test_optional_fields_accept_none(make_record: MakeRecord) -> None:
    rec = make_record(
        served_model=None,
        deployment=None,
        provider=None,
        region=None,
        tier=None,
        finish_reason=None,
        error_type="upstream_timeout",
        ttft_ms=None,
        route_reason="none",
        status=504,
    )
    assert rec.served_model is None
    assert rec.error_type == "upstream_timeout"


def test_route_reason_vocabulary_has_the_documented_codes() -> None:
    for code in (
        "explicit",
        "auto:simple",
        "auto:complex",
        "fallback:down",
        "fallback:context",
        "policy:sensitive",
    ):
        assert code in ROUTE_REASONS


@pytest.mark.parametrize(
    "counts",
    [
        {"us_ssn": 1},  # lower case
        {"123": 1},
        {"US SSN": 1},
        {"A" * 42: 1},
        {CANARY: 1},
        {"US_SSN": 0},
        {"US_SSN": -1},
        {"US_SSN": True},
        {"US_SSN": 1.5},
        ["US_SSN"],
    ],
)
def test_entity_counts_validation(make_record: MakeRecord, counts: Any) -> None:
    with pytest.raises(RecordValidationError) as info:
        make_record(entity_counts=counts)
    assert info.value.field == "entity_counts"
    assert "John" not in str(info.value)


def test_entity_counts_are_sorted_and_immutable(make_record: MakeRecord) -> None:
    rec = make_record(entity_counts={"US_SSN": 2, "PERSON": 1}, sensitive=True)
    assert list(rec.entity_counts) == ["PERSON", "US_SSN"]
    with pytest.raises(TypeError):
        rec.entity_counts["EMAIL_ADDRESS"] = 1  # type: ignore[index]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("prompt_tokens", -1),
        ("prompt_tokens", True),
        ("prompt_tokens", 1.0),
        ("completion_tokens", "5"),
        ("status", 99),
        ("status", 600),
        ("cost_usd", -0.01),
        ("cost_usd", math.nan),
        ("baseline_cost_usd", math.inf),
        ("latency_ms", "fast"),
        ("ttft_ms", -5.0),
        ("sensitive", 1),
        ("stream", "yes"),
    ],
)
def test_numbers_and_flags_are_checked(make_record: MakeRecord, name: str, value: Any) -> None:
    with pytest.raises(RecordValidationError) as info:
        make_record(**{name: value})
    assert info.value.field == name


def test_naive_timestamp_is_rejected(make_record: MakeRecord) -> None:
    with pytest.raises(RecordValidationError) as info:
        make_record(timestamp=datetime(2025, 6, 1, 12, 0))
    assert info.value.field == "timestamp"


def test_json_round_trip(make_record: MakeRecord) -> None:
    rec = make_record(entity_counts={"US_SSN": 1}, sensitive=True, stream=True)
    again = RequestRecord.from_json_dict(rec.to_json_dict())
    assert again == rec
    data = rec.to_json_dict()
    data["note"] = "x"
    with pytest.raises(RecordValidationError) as info:
        RequestRecord.from_json_dict(data)
    assert info.value.field == "note"
    data = rec.to_json_dict()
    data["timestamp"] = CANARY
    with pytest.raises(RecordValidationError) as info:
        RequestRecord.from_json_dict(data)
    assert "John" not in str(info.value)


def test_error_type_of_maps_airlock_errors() -> None:
    assert error_type_of(UpstreamTimeoutError("t")) == "upstream_timeout"
    assert error_type_of(RateLimitError("r")) == "rate_limit_exceeded"
    assert error_type_of(ModelNotFoundError("m")) == "model_not_found"
    # A custom code outside the vocabulary falls back to the error type.
    assert error_type_of(RateLimitError("r", code="weird code")) == "rate_limit_exceeded"
    assert error_type_of(ValueError(CANARY)) == "server_error"
