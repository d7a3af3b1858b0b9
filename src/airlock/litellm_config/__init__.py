"""Read a LiteLLM proxy ``config.yaml`` as an airlock configuration.

Only the common subset of LiteLLM's format is imported (see docs/config.md, "Importing
a LiteLLM config"). Anything airlock would not honour is never dropped silently: every
such key path is listed in one :class:`~airlock.config.ConfigError`, and the operator
either removes it or acknowledges it in a top-level ``airlock_ignore`` list.

Error messages name key paths and provider names only, never values: LiteLLM files
often hold literal secrets (``api_key``, ``master_key``, ``redis_password``…).

Layout: ``_convert`` maps each section to airlock's, ``_derive`` holds what is inferred
from a LiteLLM provider and endpoint (tier, capabilities), ``_findings`` collects the
problems and unsupported keys and raises them as one error.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from airlock.litellm_config._convert import Converter

__all__ = ["convert_litellm", "looks_like_litellm"]


def looks_like_litellm(data: Mapping[str, Any]) -> bool:
    """A LiteLLM proxy config: it has LiteLLM's top-level ``model_list``."""
    return "model_list" in data


def convert_litellm(data: Mapping[str, Any], source: str) -> dict[str, Any]:
    """The airlock config dict (validated later by ``AppConfig``) for a LiteLLM config.

    Raises ConfigError listing every problem and every unsupported key path at once.
    """
    conv = Converter()
    out = conv.run(data)
    conv.raise_if_failed(source)
    return out
