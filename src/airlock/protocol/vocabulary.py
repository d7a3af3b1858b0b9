"""Names from the OpenAI API that may be logged or passed on: parameters and error codes.

Anything a caller or an upstream sends may hold content, names included (a field
called ``john_miller_536221234`` is still an SSN). Only names on these closed lists are
ever written to a log or copied into an error; everything else is only counted.
"""

from __future__ import annotations

import re

__all__ = ["OPENAI_ERROR_CODES", "OPENAI_PARAMETERS", "known_param_path"]

#: Request body fields of chat completions, completions, embeddings and responses.
OPENAI_PARAMETERS: frozenset[str] = frozenset(
    {
        "audio",
        "background",
        "best_of",
        "dimensions",
        "echo",
        "encoding_format",
        "frequency_penalty",
        "function_call",
        "functions",
        "include",
        "input",
        "instructions",
        "logit_bias",
        "logprobs",
        "max_completion_tokens",
        "max_output_tokens",
        "max_tokens",
        "messages",
        "metadata",
        "modalities",
        "model",
        "n",
        "parallel_tool_calls",
        "prediction",
        "presence_penalty",
        "previous_response_id",
        "prompt",
        "prompt_cache_key",
        "reasoning",
        "reasoning_effort",
        "response_format",
        "safety_identifier",
        "seed",
        "service_tier",
        "stop",
        "store",
        "stream",
        "stream_options",
        "suffix",
        "temperature",
        "text",
        "tool_choice",
        "tools",
        "top_logprobs",
        "top_p",
        "truncation",
        "user",
        "verbosity",
        "web_search_options",
    }
)

#: ``error.code`` values the OpenAI API (and vLLM) use, and Anthropic's error types.
OPENAI_ERROR_CODES: frozenset[str] = frozenset(
    {
        "api_error",
        "authentication_error",
        "not_found_error",
        "overloaded_error",
        "permission_error",
        "rate_limit_error",
        "request_too_large",
        "context_length_exceeded",
        "insufficient_quota",
        "invalid_api_key",
        "invalid_request_error",
        "invalid_value",
        "invalid_type",
        "missing_required_parameter",
        "model_not_found",
        "rate_limit_exceeded",
        "server_error",
        "string_above_max_length",
        "unknown_parameter",
        "unsupported_parameter",
        "unsupported_value",
        "invalid_json_schema",
        "content_policy_violation",
    }
)

#: Field names inside parameters (``messages[0].content``, ``tools[1].function.name``).
_SUBFIELDS: frozenset[str] = frozenset(
    {
        "arguments",
        "content",
        "description",
        "function",
        "id",
        "image_url",
        "include_usage",
        "json_schema",
        "name",
        "parameters",
        "role",
        "schema",
        "strict",
        "text",
        "tool_call_id",
        "tool_calls",
        "type",
        "url",
    }
)
_SEGMENT = re.compile(r"\[\d{1,6}\]|\.([a-z_]{1,40})")
_HEAD = re.compile(r"^[a-z_]{1,40}")


def known_param_path(value: str) -> bool:
    """Whether ``value`` is a ``messages[0].content``-style path made only of OpenAI
    parameter and field names and indexes, so it cannot carry content."""
    head = _HEAD.match(value)
    if head is None or head.group(0) not in OPENAI_PARAMETERS:
        return False
    pos = head.end()
    while pos < len(value):
        seg = _SEGMENT.match(value, pos)
        if seg is None or (seg.group(1) is not None and seg.group(1) not in _SUBFIELDS):
            return False
        pos = seg.end()
    return True
