"""The LiteLLM -> airlock mapping, section by section (``model_list``, routing settings).

Each LiteLLM ``model_list`` entry is one replica; entries sharing a ``model_name`` merge
into one airlock model with several deployments. Problems and unsupported keys go to
:class:`~airlock.litellm_config._findings.Findings`, which this converter extends.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

from airlock.litellm_config._derive import (
    MODES,
    OPENAI_API,
    PROVIDERS,
    anthropic_root,
    capabilities,
    derived_tier,
)
from airlock.litellm_config._findings import Findings

__all__ = ["Converter"]

# Values LiteLLM users write where a local server needs no key (vLLM without --api-key).
_NO_KEY = frozenset({"", "none", "null", "empty", "fake-key", "fake-api-key", "dummy", "no-key"})
_ENV_REF = "os.environ/"
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_REGION = re.compile(r"^[a-z0-9-]{1,32}$")
_TIERS = ("self-hosted", "frontier")
_DEFAULT_REGION = "default"

# The keys airlock reads; anything else is reported as unsupported.
_TOP_KEYS = frozenset({"model_list", "router_settings", "litellm_settings", "airlock_ignore"})
_ENTRY_KEYS = frozenset({"model_name", "litellm_params", "model_info"})
_PRICE_KEYS = frozenset({"input_cost_per_token", "output_cost_per_token"})
_PARAM_KEYS = _PRICE_KEYS | frozenset(
    {"model", "custom_llm_provider", "api_base", "api_key", "timeout", "stream_timeout"}
    | {"max_parallel_requests"}
)
_INFO_KEYS = _PRICE_KEYS | frozenset(
    {"id", "mode", "max_input_tokens", "supports_function_calling", "supports_response_schema"}
    | {"airlock_tier", "airlock_region", "airlock_quality"}
)
_ROUTER_KEYS = frozenset({"fallbacks", "num_retries", "cooldown_time"})
_LITELLM_KEYS = frozenset({"fallbacks", "num_retries"})
# airlock's max_attempts is capped at 10 (first try + 9 retries).
_MAX_RETRIES = 9


@dataclass
class _Entry:
    """One ``model_list`` item: one replica of the model it names."""

    path: str
    name: str
    deployment: dict[str, Any]
    # Model-level values this entry implies, each must agree across the model's replicas.
    model: dict[str, Any]


class Converter(Findings):
    """Maps one LiteLLM config to an airlock config dict, collecting what it cannot."""

    def run(self, data: Mapping[str, Any]) -> dict[str, Any]:
        self.ignore = self.ignore_list(data.get("airlock_ignore"))
        models = self.models(data.get("model_list"))
        routing = self.routing(data)
        for key, value in data.items():
            if key in _TOP_KEYS or value is None or value == {}:
                continue  # an empty section asks for nothing
            # Name each setting of an unknown section, so the list says what is lost.
            if isinstance(value, Mapping):
                self.extra_keys(value, str(key), frozenset())
            else:
                self.not_supported(str(key))
        out: dict[str, Any] = {"models": models}
        if routing:
            out["routing"] = routing
        return out

    def models(self, model_list: Any) -> list[dict[str, Any]]:
        if not isinstance(model_list, list) or not model_list:
            self.problem("model_list", "must be a non-empty list of models")
            return []
        groups: dict[str, list[_Entry]] = {}
        for i, item in enumerate(model_list):
            entry = self.entry(item, f"model_list[{i}]")
            if entry is not None:
                groups.setdefault(entry.name, []).append(entry)
        return [self.merge(name, entries) for name, entries in groups.items()]

    def entry(self, item: Any, path: str) -> _Entry | None:
        if not isinstance(item, Mapping):
            self.problem(path, "must be a mapping with model_name and litellm_params")
            return None
        self.extra_keys(item, path, _ENTRY_KEYS)
        name = item.get("model_name")
        params = item.get("litellm_params")
        info = item.get("model_info") or {}
        ok = True
        if not isinstance(name, str) or not name:
            self.problem(f"{path}.model_name", "must be a non-empty string")
            ok = False
        elif "*" in name:
            self.problem(f"{path}.model_name", "wildcard models are not supported; name each")
            ok = False
        if not isinstance(params, Mapping):
            self.problem(f"{path}.litellm_params", "must be a mapping")
            return None
        if not isinstance(info, Mapping):
            self.problem(f"{path}.model_info", "must be a mapping")
            info = {}
        self.extra_keys(params, f"{path}.litellm_params", _PARAM_KEYS)
        self.extra_keys(info, f"{path}.model_info", _INFO_KEYS)
        deployment, model = self.deployment(params, info, path)
        if not ok or deployment is None or not isinstance(name, str):
            return None
        return _Entry(path, name, deployment, model)

    def deployment(
        self, params: Mapping[str, Any], info: Mapping[str, Any], path: str
    ) -> tuple[dict[str, Any] | None, dict[str, Any]]:
        p = f"{path}.litellm_params"
        model: dict[str, Any] = {}
        key_env = self.api_key(params.get("api_key"), f"{p}.api_key")
        api_base = self.api_base(params.get("api_base"), f"{p}.api_base")
        target = self.target(params, p)
        if target is None:
            return None, model
        litellm_provider, upstream = target
        provider = PROVIDERS[litellm_provider]
        dep: dict[str, Any] = {"provider": provider, "upstream_model": upstream}
        if litellm_provider == "openai" and api_base is None:
            api_base = OPENAI_API
            # Like LiteLLM, the OpenAI API's key defaults to the usual variable.
            if params.get("api_key") is None:
                key_env = "OPENAI_API_KEY"
        if api_base is None and provider == "openai-compatible":
            self.problem(f"{p}.api_base", f"is required for {litellm_provider}/ models")
        if api_base is not None:
            dep["base_url"] = anthropic_root(api_base) if provider == "anthropic" else api_base
        if key_env is not None:
            dep["api_key_env"] = key_env
        timeouts = self.timeouts(params, p)
        if timeouts:
            dep["timeouts"] = timeouts
        if "max_parallel_requests" in params:
            n = self.integer(params["max_parallel_requests"], f"{p}.max_parallel_requests", 1)
            if n is not None:
                dep["max_concurrency"] = n
        self.model_info(info, f"{path}.model_info", dep, model)
        self.prices(params, p, model)
        derived = derived_tier(litellm_provider, api_base)
        model.setdefault("tier", derived)
        if "capabilities" not in model:
            model["capabilities"] = capabilities("chat", provider, info)
        return dep, model

    def target(self, params: Mapping[str, Any], p: str) -> tuple[str, str] | None:
        """(LiteLLM provider, upstream model name) of ``litellm_params.model``."""
        model = params.get("model")
        if not isinstance(model, str) or not model:
            self.problem(f"{p}.model", "must be a non-empty string such as openai/<model>")
            return None
        if model.startswith(_ENV_REF):
            self.problem(f"{p}.model", "environment references are not supported here")
            return None
        custom = params.get("custom_llm_provider")
        if custom is not None:
            provider, upstream = str(custom), model
        elif "/" in model:
            provider, upstream = model.split("/", 1)
        else:
            self.problem(
                f"{p}.model",
                "has no provider prefix; write e.g. openai/<model> (with api_base for an "
                "OpenAI-compatible server) or anthropic/<model>",
            )
            return None
        if provider not in PROVIDERS:
            self.problem(
                f"{p}.model",
                f"provider '{provider}' is not supported; airlock imports "
                f"{', '.join(p + '/' for p in PROVIDERS)} models (an OpenAI-compatible API "
                "can be written as openai/<model> with its api_base)",
            )
            return None
        if not upstream or "*" in upstream:
            self.problem(f"{p}.model", "needs a model name after the provider prefix")
            return None
        return provider, upstream

    def api_key(self, value: Any, path: str) -> str | None:
        """The environment variable holding the key; literal keys are refused."""
        if value is None:
            return None
        if isinstance(value, str) and value.startswith(_ENV_REF):
            name = value.removeprefix(_ENV_REF)
            if not _ENV_NAME.match(name):
                self.problem(path, "os.environ/ must be followed by a variable name")
                return None
            return name
        if isinstance(value, str) and value.strip().lower() in _NO_KEY:
            return None
        # Never include the value: it is a secret.
        self.problem(
            path,
            "an inline API key is not accepted (it would live in the config file); "
            "put it in an environment variable and write api_key: os.environ/NAME",
        )
        return None

    def api_base(self, value: Any, path: str) -> str | None:
        if value is None:
            return None
        if not isinstance(value, str):
            self.problem(path, "must be a URL string")
            return None
        if value.startswith(_ENV_REF):
            self.problem(path, "environment references are only supported for api_key")
            return None
        try:
            url = urlsplit(value)
            has_credentials = url.username is not None or url.password is not None
            ok = url.scheme in ("http", "https") and bool(url.hostname)
        except ValueError:
            ok, has_credentials = False, False
        if has_credentials:
            self.problem(path, "must not contain credentials; use api_key: os.environ/NAME")
            return None
        if not ok:
            self.problem(path, "must be an http:// or https:// URL")
            return None
        return value

    def timeouts(self, params: Mapping[str, Any], p: str) -> dict[str, float]:
        total = self.number(params.get("timeout"), f"{p}.timeout")
        stream = self.number(params.get("stream_timeout"), f"{p}.stream_timeout")
        out: dict[str, float] = {}
        if total is not None:
            out["total"] = total
        # LiteLLM's timeout is also the per-read limit; stream_timeout replaces it for
        # streams. airlock has one read limit, the wait for the first token.
        first = stream if stream is not None else total
        if first is not None:
            out["first_token"] = first
        return out

    def prices(self, params: Mapping[str, Any], p: str, model: dict[str, Any]) -> None:
        # LiteLLM accepts custom prices in litellm_params as well as in model_info.
        for key, field_name in (
            ("input_cost_per_token", "input_per_mtok"),
            ("output_cost_per_token", "output_per_mtok"),
        ):
            cost = self.number(params.get(key), f"{p}.{key}", minimum=0.0)
            if cost is None:
                continue
            per_mtok = round(cost * 1_000_000, 9)
            if model.get(field_name, per_mtok) != per_mtok:
                self.problem(f"{p}.{key}", "differs from the same price in model_info")
            model[field_name] = per_mtok

    def model_info(
        self, info: Mapping[str, Any], path: str, dep: dict[str, Any], model: dict[str, Any]
    ) -> None:
        if "id" in info:
            if isinstance(info["id"], str) and info["id"]:
                dep["name"] = info["id"]
            else:
                self.problem(f"{path}.id", "must be a non-empty string")
        mode = info.get("mode", "chat")
        if not isinstance(mode, str) or mode not in MODES:
            self.problem(f"{path}.mode", f"must be one of {', '.join(MODES)}")
        else:
            model["capabilities"] = capabilities(mode, dep["provider"], info)
        for flag in ("supports_function_calling", "supports_response_schema"):
            if flag in info and not isinstance(info[flag], bool):
                self.problem(f"{path}.{flag}", "must be true or false")
        self.prices(info, path, model)
        if "max_input_tokens" in info:
            window = self.integer(info["max_input_tokens"], f"{path}.max_input_tokens", 1)
            if window is not None:
                model["context_window"] = window
        if "airlock_tier" in info:
            if info["airlock_tier"] in _TIERS:
                model["tier"] = info["airlock_tier"]
            else:
                self.problem(f"{path}.airlock_tier", "must be self-hosted or frontier")
        region = info.get("airlock_region", _DEFAULT_REGION)
        if isinstance(region, str) and _REGION.match(region):
            dep["region"] = region
        else:
            self.problem(f"{path}.airlock_region", "must be 1-32 of a-z, 0-9 and -")
        if "airlock_quality" in info:
            q = self.number(info["airlock_quality"], f"{path}.airlock_quality", minimum=0.0)
            if q is not None and q > 1:
                self.problem(f"{path}.airlock_quality", "must be between 0 and 1")
            elif q is not None:
                model["quality"] = q

    def merge(self, name: str, entries: list[_Entry]) -> dict[str, Any]:
        """One airlock model from the replicas sharing a model_name."""
        out: dict[str, Any] = {"name": name}
        keys = dict.fromkeys(k for e in entries for k in e.model)
        for key in keys:
            values = {repr(_sorted(e.model[key])): e for e in entries if key in e.model}
            if len(values) > 1:
                where = ", ".join(e.path for e in entries if key in e.model)
                hint = " (set model_info.airlock_tier on each)" if key == "tier" else ""
                self.problem(
                    f"model_name {name!r}",
                    f"its entries ({where}) disagree on {_MODEL_FIELD[key]}; airlock keeps "
                    f"one value per model{hint}",
                )
            first = next(e for e in entries if key in e.model)
            value = _sorted(first.model[key])
            if key in ("input_per_mtok", "output_per_mtok"):
                out.setdefault("price", {})[key] = value
            else:
                out[key] = value
        out["deployments"] = [e.deployment for e in entries]
        return out

    def routing(self, data: Mapping[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        fallbacks: dict[str, list[str]] = {}
        retries: int | None = None
        for section, known in (
            ("router_settings", _ROUTER_KEYS),
            ("litellm_settings", _LITELLM_KEYS),
        ):
            values = data.get(section)
            if values is None:
                continue
            if not isinstance(values, Mapping):
                self.problem(section, "must be a mapping")
                continue
            self.extra_keys(values, section, known)
            if "fallbacks" in values:
                self.fallbacks(values["fallbacks"], f"{section}.fallbacks", fallbacks)
            if "num_retries" in values:
                n = self.integer(values["num_retries"], f"{section}.num_retries", 0)
                if n is not None and n > _MAX_RETRIES:
                    self.problem(
                        f"{section}.num_retries", f"airlock retries at most {_MAX_RETRIES}"
                    )
                elif n is not None and retries not in (None, n):
                    self.problem(f"{section}.num_retries", "differs from router_settings")
                elif n is not None:
                    retries = n
        if fallbacks:
            out["fallbacks"] = fallbacks
        if retries is not None:
            out["retry"] = {"max_attempts": retries + 1}
        router = data.get("router_settings")
        if isinstance(router, Mapping) and "cooldown_time" in router:
            cool = self.number(router["cooldown_time"], "router_settings.cooldown_time")
            if cool is not None:
                out["breaker"] = {"reset_after_s": cool}
        return out

    def fallbacks(self, value: Any, path: str, out: dict[str, list[str]]) -> None:
        # LiteLLM writes a list of one-key mappings: [{"a": ["b", "c"]}, …].
        items = [value] if isinstance(value, Mapping) else value
        if not isinstance(items, list) or not all(isinstance(i, Mapping) for i in items):
            self.problem(path, "must be a list of {model: [fallback, …]} mappings")
            return
        for i, item in enumerate(items):
            for model, chain in item.items():
                where = f"{path}[{i}].{model}"
                if not isinstance(chain, list) or not all(isinstance(c, str) for c in chain):
                    self.problem(where, "must be a list of model names")
                elif out.get(str(model), chain) != chain:
                    self.problem(where, "conflicts with another fallback list for this model")
                else:
                    out[str(model)] = list(chain)


_MODEL_FIELD: Mapping[str, str] = MappingProxyType(
    {
        "tier": "the tier",
        "capabilities": "mode / supports_* flags",
        "input_per_mtok": "input_cost_per_token",
        "output_per_mtok": "output_cost_per_token",
        "context_window": "max_input_tokens",
        "quality": "airlock_quality",
    }
)


def _sorted(value: Any) -> Any:
    # Capabilities are sets; a sorted list compares and serialises deterministically.
    return sorted(value) if isinstance(value, frozenset) else value
