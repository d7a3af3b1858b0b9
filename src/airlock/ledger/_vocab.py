"""The fixed vocabularies and patterns a ledger/audit record may contain.

Every string in a record comes from one of these sets or matches one of these
patterns, so no field can carry free text from a request or response (invariant 1).
"""

from __future__ import annotations

import re

__all__ = [
    "ENDPOINTS",
    "ENTITY_TYPE_PATTERN",
    "ERROR_TYPES",
    "FINISH_REASONS",
    "ID_PATTERN",
    "KEY_KINDS",
    "PROVIDER_PATTERN",
    "REGION_PATTERN",
    "ROUTE_REASONS",
    "TIERS",
]

#: Request ids, principal ids, tenants, model and deployment names.
ID_PATTERN = re.compile(r"^[A-Za-z0-9._:@/-]{1,128}$")
#: Detector entity types (e.g. ``US_SSN``), never entity values.
ENTITY_TYPE_PATTERN = re.compile(r"^[A-Z][A-Z0-9_]{0,40}$")
#: Provider adapter names from the registry (``openai-compatible``, ``anthropic``, ...).
PROVIDER_PATTERN = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")
#: Region tags, as in the deployment config.
REGION_PATTERN = re.compile(r"^[a-z0-9-]{1,32}$")

KEY_KINDS: frozenset[str] = frozenset({"master", "api_key", "oidc", "anonymous"})

ENDPOINTS: frozenset[str] = frozenset(
    {
        "/v1/chat/completions",
        "/v1/completions",
        "/v1/embeddings",
        "/v1/responses",
        "/v1/models",
    }
)

TIERS: frozenset[str] = frozenset({"self-hosted", "frontier"})

#: Why the router chose the deployment; also the value of ``x-airlock-route-reason``.
ROUTE_REASONS: frozenset[str] = frozenset(
    {
        "explicit",  # the caller named a model
        "auto:simple",  # complexity scorer kept it on the self-hosted tier
        "auto:complex",  # complexity scorer sent it to the strong tier
        "auto:cost",
        "auto:latency",
        "auto:prefer-cost",  # the caller's x-airlock-prefer header decided
        "auto:prefer-latency",
        "auto:prefer-quality",
        "fallback:policy",  # the first choice's deployments are outside policy
        "fallback:down",  # first choice unhealthy / circuit open
        "fallback:context",  # prompt did not fit the first choice's context window
        "fallback:error",  # first choice failed with a retryable error
        "fallback:timeout",
        "fallback:rate_limit",
        "policy:sensitive",  # sensitive request pinned to self-hosted
        "policy:region",  # region policy restricted the choice
        "policy:pseudonymize",  # sent to a frontier API with entities replaced
        "none",  # failed before a route was chosen
    }
)

FINISH_REASONS: frozenset[str] = frozenset(
    {"stop", "length", "tool_calls", "content_filter", "function_call", "error", "cancelled"}
)

#: Short error codes: the ``code`` (or ``type``) of :mod:`airlock.errors` plus a few
#: conditions that have no HTTP error of their own.
ERROR_TYPES: frozenset[str] = frozenset(
    {
        "invalid_request_error",
        "invalid_api_key",
        "permission_denied",
        "not_found",
        "model_not_found",
        "request_too_large",
        "rate_limit_exceeded",
        "insufficient_quota",
        "policy_violation",
        "unsupported_parameter",
        "context_length_exceeded",
        "upstream_error",
        "upstream_timeout",
        "service_unavailable",
        "server_error",
        "client_disconnected",
        "no_compliant_deployment",
        "no_allowed_deployment",
        "sensitive_data_blocked",
        "internal_error",
    }
)
