"""What a LiteLLM entry implies but does not say: airlock provider, tier, capabilities."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

__all__ = ["MODES", "OPENAI_API", "PROVIDERS", "anthropic_root", "capabilities", "derived_tier"]

# LiteLLM provider prefix -> airlock provider type.
PROVIDERS: Mapping[str, str] = MappingProxyType(
    {
        **dict.fromkeys(
            ("openai", "hosted_vllm", "vllm", "openai_like", "custom_openai"), "openai-compatible"
        ),
        "anthropic": "anthropic",
    }
)
OPENAI_API = "https://api.openai.com/v1"
# LiteLLM model_info.mode -> the capabilities such a model has unless a supports_* flag says no.
MODES: Mapping[str, frozenset[str]] = MappingProxyType(
    {
        "chat": frozenset({"chat", "completions", "tools", "json_mode"}),
        "completion": frozenset({"completions"}),
        "embedding": frozenset({"embeddings"}),
    }
)
# Providers whose requests always end at a third party's API, whatever api_base says.
_FRONTIER_PROVIDERS = frozenset({"anthropic"})
# Host names that only resolve inside the operator's own network.
_PRIVATE_SUFFIXES = (".localhost", ".local", ".internal", ".lan", ".home.arpa", ".svc")
# A single-label host (Compose/Kubernetes service, "localhost") and IPv6 unique-local.
_SERVICE_NAME = re.compile(r"^[a-z][a-z0-9-]*$")
_ULA = ipaddress.IPv6Network("fc00::/7")


def capabilities(mode: str, provider: str, info: Mapping[str, Any]) -> frozenset[str]:
    caps = set(MODES[mode])
    if info.get("supports_function_calling") is False:
        caps.discard("tools")
    if info.get("supports_response_schema") is False:
        caps.discard("json_mode")
    if provider == "anthropic":
        # Anthropic's API has no legacy text-completions endpoint.
        caps.discard("completions")
    return frozenset(caps)


def derived_tier(litellm_provider: str, api_base: str | None) -> str:
    """self-hosted only when the endpoint is provably on the operator's own network.

    Misfiling a private server as frontier only keeps sensitive requests away from it
    (fix with model_info.airlock_tier); misfiling a public API as self-hosted would let
    sensitive requests leave, so every doubtful case is frontier.
    """
    if litellm_provider in _FRONTIER_PROVIDERS or api_base is None:
        return "frontier"
    host = (urlsplit(api_base).hostname or "").lower().rstrip(".")
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        # A single label must start with a letter: "134744072" is 8.8.8.8 to resolvers.
        private = bool(_SERVICE_NAME.match(host)) or host.endswith(_PRIVATE_SUFFIXES)
    else:
        if isinstance(ip, ipaddress.IPv6Address):
            # Python 3.11 calls ::ffff:8.8.8.8 private; judge the IPv4 address inside.
            ip = ip.ipv4_mapped or ip
        if isinstance(ip, ipaddress.IPv6Address):
            private = ip.is_loopback or ip.is_link_local or ip in _ULA
        else:
            private = ip.is_loopback or ip.is_private or ip.is_link_local
    return "self-hosted" if private else "frontier"


def anthropic_root(api_base: str) -> str:
    """LiteLLM accepts the full messages URL; airlock's provider wants the API root."""
    return api_base.rstrip("/").removesuffix("/v1/messages").removesuffix("/v1")
