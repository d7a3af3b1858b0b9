"""Only names on OpenAI's own lists may be logged or copied into an error."""

from __future__ import annotations

import pytest

from airlock.protocol.vocabulary import OPENAI_ERROR_CODES, OPENAI_PARAMETERS, known_param_path


@pytest.mark.parametrize(
    "path",
    [
        "messages",
        "messages[0].content",
        "messages[12].tool_calls[0].function.arguments",
        "tools[1].function.name",
        "response_format.json_schema.schema",
        "stream_options.include_usage",
        "max_tokens",
    ],
)
def test_openai_parameter_paths_are_known(path: str) -> None:
    assert known_param_path(path)


@pytest.mark.parametrize(
    "path",
    [
        "john_miller_536221234",
        "messages[0].john_miller",
        "messages[0]content",
        "messages[0].content ",
        "Messages",
        "messages[0].content.536-22-1234",
        "messages[1234567].content",
        "",
        "model.x" * 10,
    ],
)
def test_anything_else_is_not(path: str) -> None:
    assert not known_param_path(path)


def test_lists_hold_names_only() -> None:
    for name in OPENAI_PARAMETERS | OPENAI_ERROR_CODES:
        assert name.replace("_", "").isalpha()
        assert name == name.lower()
