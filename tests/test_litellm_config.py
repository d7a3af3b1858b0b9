"""Importing LiteLLM proxy configs: mapping, refusals, acknowledgements, a real gateway."""

from __future__ import annotations

import json
import textwrap
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from typer.testing import CliRunner

from airlock.cli import build_app
from airlock.config import AppConfig, ConfigError, load_app_config, load_settings
from airlock.litellm_config import convert_litellm, looks_like_litellm
from tests.support.server import start_gateway

SECRET = "sk-proj-Zq8xT1vLq2Ww9Rr7"  # a made-up key that must never be echoed


def _doc(text: str) -> dict[str, Any]:
    data = yaml.safe_load(textwrap.dedent(text))
    assert isinstance(data, dict)
    return data


def _convert(text: str) -> AppConfig:
    return AppConfig.model_validate(convert_litellm(_doc(text), "litellm.yaml"))


def _error(text: str) -> str:
    with pytest.raises(ConfigError) as info:
        convert_litellm(_doc(text), "litellm.yaml")
    return str(info.value)


# The load-balancing example of LiteLLM's proxy docs, written with providers airlock
# imports (hosted_vllm replicas, OpenAI with an environment key) and its settings.
DOCS_LOAD_BALANCING = """
model_list:
  - model_name: zephyr-beta
    litellm_params:
      model: hosted_vllm/HuggingFaceH4/zephyr-7b-beta
      api_base: http://0.0.0.0:8001/v1
  - model_name: zephyr-beta
    litellm_params:
      model: hosted_vllm/HuggingFaceH4/zephyr-7b-beta
      api_base: http://0.0.0.0:8002/v1
  - model_name: zephyr-beta
    litellm_params:
      model: hosted_vllm/HuggingFaceH4/zephyr-7b-beta
      api_base: http://0.0.0.0:8003/v1
  - model_name: gpt-4o
    litellm_params:
      model: openai/gpt-4o
      api_key: os.environ/OPENAI_API_KEY
  - model_name: gpt-3.5-turbo-16k
    litellm_params:
      model: openai/gpt-3.5-turbo-16k
      api_key: os.environ/OPENAI_API_KEY

litellm_settings:
  num_retries: 3
  fallbacks: [{"zephyr-beta": ["gpt-4o"]}]

router_settings:
  num_retries: 3
  cooldown_time: 30
"""


def test_looks_like_litellm() -> None:
    assert looks_like_litellm({"model_list": []})
    assert not looks_like_litellm({"models": [], "routing": {}})
    assert not looks_like_litellm({})


def test_docs_load_balancing_example() -> None:
    app = _convert(DOCS_LOAD_BALANCING)
    assert [m.name for m in app.models] == ["zephyr-beta", "gpt-4o", "gpt-3.5-turbo-16k"]
    zephyr, gpt4o, _ = app.models
    # Three entries with one model_name are three replicas of one model.
    assert [d.base_url for d in zephyr.deployments] == [
        "http://0.0.0.0:8001/v1",
        "http://0.0.0.0:8002/v1",
        "http://0.0.0.0:8003/v1",
    ]
    assert {d.provider for d in zephyr.deployments} == {"openai-compatible"}
    assert {d.upstream_model for d in zephyr.deployments} == {"HuggingFaceH4/zephyr-7b-beta"}
    assert {d.api_key_env for d in zephyr.deployments} == {None}
    assert zephyr.tier == "self-hosted"
    assert {d.region for d in zephyr.deployments} == {"default"}
    assert gpt4o.tier == "frontier"
    assert gpt4o.deployments[0].base_url == "https://api.openai.com/v1"
    assert gpt4o.deployments[0].api_key_env == "OPENAI_API_KEY"
    assert gpt4o.deployments[0].upstream_model == "gpt-4o"
    assert app.routing.fallbacks == {"zephyr-beta": ["gpt-4o"]}
    assert app.routing.retry.max_attempts == 4
    assert app.routing.breaker.reset_after_s == 30


def test_model_info_and_params_map_to_airlock_fields() -> None:
    app = _convert(
        """
        model_list:
          - model_name: llama-3.3-70b
            litellm_params:
              model: openai/meta-llama/Llama-3.3-70B-Instruct
              api_base: http://vllm-0.vllm.svc:8000/v1
              api_key: os.environ/VLLM_API_KEY
              timeout: 300
              stream_timeout: 30
              max_parallel_requests: 128
            model_info:
              id: vllm-0
              max_input_tokens: 32768
              airlock_region: eu-west
              airlock_quality: 0.7
          - model_name: llama-3.3-70b
            litellm_params:
              model: openai/meta-llama/Llama-3.3-70B-Instruct
              api_base: http://10.1.2.3:8000/v1
              api_key: os.environ/VLLM_API_KEY
              timeout: 300
            model_info:
              id: vllm-1
              max_input_tokens: 32768
          - model_name: gpt-4o-mini
            litellm_params:
              model: openai/gpt-4o-mini
              api_key: os.environ/OPENAI_API_KEY
            model_info:
              input_cost_per_token: 0.00000015
              output_cost_per_token: 0.0000006
              supports_function_calling: false
          - model_name: text-embedding-3-small
            litellm_params:
              model: openai/text-embedding-3-small
            model_info:
              mode: embedding
          - model_name: legacy-completions
            litellm_params:
              model: hosted_vllm/facebook/opt-125m
              api_base: http://localhost:8000/v1
              input_cost_per_token: 0.0000001
            model_info:
              mode: completion
        """
    )
    llama, mini, embed, legacy = app.models
    first, second = llama.deployments
    assert (first.name, second.name) == ("vllm-0", "vllm-1")
    assert (first.region, second.region) == ("eu-west", "default")
    assert first.timeouts.total == 300
    assert first.timeouts.first_token == 30  # stream_timeout is the per-read limit
    assert second.timeouts.first_token == 300  # without it, LiteLLM reads with timeout
    assert first.max_concurrency == 128
    assert second.max_concurrency == 64
    assert first.api_key_env == "VLLM_API_KEY"
    assert llama.context_window == 32768
    assert llama.quality == 0.7
    assert llama.tier == "self-hosted"
    assert llama.capabilities == {"chat", "completions", "tools", "json_mode"}
    assert mini.price.input_per_mtok == 0.15
    assert mini.price.output_per_mtok == 0.6
    assert "tools" not in mini.capabilities
    assert embed.capabilities == {"embeddings"}
    assert embed.deployments[0].api_key_env == "OPENAI_API_KEY"
    assert legacy.capabilities == {"completions"}
    assert legacy.price.input_per_mtok == 0.1


def test_anthropic_models_use_the_anthropic_provider() -> None:
    app = _convert(
        """
        model_list:
          - model_name: claude-sonnet
            litellm_params:
              model: anthropic/claude-3-5-sonnet-20240620
              api_key: os.environ/ANTHROPIC_API_KEY
          - model_name: claude-via-gateway
            litellm_params:
              model: anthropic/claude-3-haiku-20240307
              api_base: http://127.0.0.1:9000/v1/messages
              api_key: os.environ/ANTHROPIC_API_KEY
        """
    )
    direct, proxied = app.models
    assert direct.deployments[0].provider == "anthropic"
    assert direct.deployments[0].upstream_model == "claude-3-5-sonnet-20240620"
    assert direct.deployments[0].base_url is None  # the provider's default API
    assert direct.tier == "frontier"
    assert "completions" not in direct.capabilities
    # A private address in front of Anthropic still ends at Anthropic.
    assert proxied.tier == "frontier"
    assert proxied.deployments[0].base_url == "http://127.0.0.1:9000"


@pytest.mark.parametrize(
    ("api_base", "tier"),
    [
        ("http://localhost:8000/v1", "self-hosted"),
        ("http://127.0.0.1:8000/v1", "self-hosted"),
        ("http://0.0.0.0:4000/v1", "self-hosted"),
        ("http://10.0.0.7/v1", "self-hosted"),
        ("http://192.168.1.20:8000/v1", "self-hosted"),
        ("http://[::1]:8000/v1", "self-hosted"),
        ("http://[fd00::5]:8000/v1", "self-hosted"),
        ("http://vllm:8000/v1", "self-hosted"),  # compose / k8s service name
        ("http://vllm.inference.svc:8000/v1", "self-hosted"),
        ("http://gpu-box.internal:8000/v1", "self-hosted"),
        ("https://api.openai.com/v1", "frontier"),
        ("https://api.groq.com/openai/v1", "frontier"),
        ("https://vllm.example.com/v1", "frontier"),  # public name: cannot tell, so frontier
        ("http://8.8.8.8/v1", "frontier"),
        ("http://[::ffff:8.8.8.8]/v1", "frontier"),  # Python 3.11 calls this "private"
        ("http://[::ffff:10.0.0.1]/v1", "self-hosted"),
        ("http://[2606:4700::1111]/v1", "frontier"),
        ("http://134744072/v1", "frontier"),  # 8.8.8.8 written as one number
        ("http://100.64.0.1/v1", "frontier"),  # carrier-grade NAT is not yours
    ],
)
def test_tier_follows_the_api_base(api_base: str, tier: str) -> None:
    app = _convert(
        f"""
        model_list:
          - model_name: m
            litellm_params: {{model: hosted_vllm/some-model, api_base: "{api_base}"}}
        """
    )
    assert app.models[0].tier == tier


def test_airlock_tier_overrides_the_derived_tier() -> None:
    app = _convert(
        """
        model_list:
          - model_name: our-vllm
            litellm_params:
              model: hosted_vllm/Qwen/Qwen2.5-72B-Instruct
              api_base: https://llm.corp.example.com/v1
            model_info: {airlock_tier: self-hosted}
          - model_name: shared-box
            litellm_params: {model: openai/m, api_base: "http://10.0.0.9/v1"}
            model_info: {airlock_tier: frontier}
        """
    )
    assert [m.tier for m in app.models] == ["self-hosted", "frontier"]


def test_replicas_that_disagree_on_model_values_are_refused() -> None:
    message = _error(
        """
        model_list:
          - model_name: mixed
            litellm_params: {model: hosted_vllm/m, api_base: "http://10.0.0.1/v1"}
            model_info: {max_input_tokens: 8192}
          - model_name: mixed
            litellm_params: {model: hosted_vllm/m, api_base: "https://public.example.com/v1"}
            model_info: {max_input_tokens: 4096}
        """
    )
    # One private and one public replica: the model cannot be both tiers.
    assert "disagree on the tier" in message
    assert "set model_info.airlock_tier on each" in message
    assert "disagree on max_input_tokens" in message
    assert "model_list[0], model_list[1]" in message


def test_placeholder_keys_mean_no_key() -> None:
    app = _convert(
        """
        model_list:
          - model_name: vllm-models
            litellm_params:
              model: openai/facebook/opt-125m
              api_base: http://0.0.0.0:4000/v1
              api_key: none
          - model_name: other
            litellm_params: {model: hosted_vllm/x, api_base: "http://x:1/v1", api_key: EMPTY}
        """
    )
    assert [m.deployments[0].api_key_env for m in app.models] == [None, None]


def test_inline_api_key_is_refused_without_echoing_it() -> None:
    message = _error(
        f"""
        model_list:
          - model_name: gpt-4o
            litellm_params:
              model: openai/gpt-4o
              api_key: {SECRET}
        """
    )
    assert "model_list[0].litellm_params.api_key" in message
    assert "os.environ/" in message
    assert SECRET not in message
    assert SECRET[:8] not in message


def test_inline_key_cannot_be_acknowledged_away() -> None:
    message = _error(
        f"""
        model_list:
          - model_name: gpt-4o
            litellm_params: {{model: openai/gpt-4o, api_key: "{SECRET}", rpm: 10}}
        airlock_ignore: ["model_list[*].litellm_params"]
        """
    )
    assert "inline API key is not accepted" in message
    assert SECRET not in message


def test_credentials_in_api_base_are_refused_without_echoing_them() -> None:
    message = _error(
        f"""
        model_list:
          - model_name: m
            litellm_params: {{model: openai/m, api_base: "https://user:{SECRET}@h.example/v1"}}
        """
    )
    assert "model_list[0].litellm_params.api_base: must not contain credentials" in message
    assert SECRET not in message


def test_everything_unsupported_is_named_in_one_error() -> None:
    # LiteLLM's own quick-start config: Azure, Bedrock, a wildcard, callbacks, settings.
    message = _error(
        """
        model_list:
          - model_name: gpt-4o
            litellm_params:
              model: azure/gpt-4o-eu
              api_base: https://my-endpoint-europe-berri-992.openai.azure.com/
              api_key: "os.environ/AZURE_API_KEY_EU"
              rpm: 6
          - model_name: bedrock-claude-v1
            litellm_params:
              model: bedrock/anthropic.claude-instant-v1
              aws_region_name: us-east-1
          - model_name: vllm-models
            litellm_params:
              model: openai/facebook/opt-125m
              api_base: http://0.0.0.0:4000/v1
              api_key: none
              rpm: 1440
              temperature: 0.2
            model_info:
              version: 2
              base_model: opt-125m
          - model_name: "*"
            litellm_params:
              model: "*"
        litellm_settings:
          drop_params: True
          success_callback: ["langfuse"]
          context_window_fallbacks: [{"vllm-models": ["gpt-4o"]}]
        general_settings:
          master_key: sk-1234
          alerting: ["slack"]
        router_settings:
          routing_strategy: simple-shuffle
          redis_password: hunter2-redis
        environment_variables:
          REDIS_HOST: redis.example.com
        """
    )
    assert message.count("LiteLLM config litellm.yaml") == 1
    for path in [
        "model_list[0].litellm_params.rpm",
        "model_list[1].litellm_params.aws_region_name",
        "model_list[2].litellm_params.rpm",
        "model_list[2].litellm_params.temperature",
        "model_list[2].model_info.version",
        "model_list[2].model_info.base_model",
        "litellm_settings.drop_params",
        "litellm_settings.success_callback",
        "litellm_settings.context_window_fallbacks",
        "general_settings.master_key",
        "general_settings.alerting",
        "router_settings.routing_strategy",
        "router_settings.redis_password",
        "environment_variables.REDIS_HOST",
    ]:
        assert f"\n  {path}\n" in message + "\n", path
    assert "provider 'azure' is not supported" in message
    assert "provider 'bedrock' is not supported" in message
    assert "model_list[3].model_name: wildcard models are not supported" in message
    # Ready to paste, with one line per kind of key rather than per entry.
    assert '    - "model_list[*].litellm_params.rpm"' in message
    assert message.count('litellm_params.rpm"') == 1
    # Values are never shown: secrets and hosts alike.
    for value in ("sk-1234", "hunter2-redis", "redis.example.com", "langfuse"):
        assert value not in message


def test_acknowledged_keys_are_accepted() -> None:
    app = _convert(
        """
        model_list:
          - model_name: vllm-models
            litellm_params:
              model: openai/facebook/opt-125m
              api_base: http://0.0.0.0:4000/v1
              rpm: 1440
              tpm: 100000
          - model_name: vllm-models
            litellm_params:
              model: openai/facebook/opt-125m
              api_base: http://0.0.0.0:4001/v1
              rpm: 1440
        litellm_settings:
          drop_params: true
          success_callback: ["langfuse"]
        general_settings:
          master_key: os.environ/LITELLM_MASTER_KEY
        airlock_ignore:
          - "model_list[*].litellm_params.rpm"
          - model_list[0].litellm_params.tpm
          - litellm_settings
          - general_settings.master_key
        """
    )
    assert len(app.models[0].deployments) == 2


def test_ignore_entries_must_match_something() -> None:
    message = _error(
        """
        model_list:
          - model_name: m
            litellm_params: {model: openai/m, api_base: "http://h:1/v1", rpm: 5}
        airlock_ignore: ["model_list[*].litellm_params.rpm", "litellm_settings.typo"]
        """
    )
    assert "airlock_ignore: 'litellm_settings.typo' matches no unsupported key" in message
    assert "keys airlock does not support" not in message  # rpm was acknowledged


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ("{model: gpt-4o}", "model_list[0].litellm_params.model: has no provider prefix"),
        ("{model: hosted_vllm/m}", "model_list[0].litellm_params.api_base: is required"),
        ("{model: openai/*}", "needs a model name after the provider prefix"),
        ("{model: openai/m, api_key: os.environ/1BAD}", "must be followed by a variable name"),
        ("{model: openai/m, api_base: os.environ/BASE}", "only supported for api_key"),
        ("{model: openai/m, api_base: ftp://h/v1}", "must be an http:// or https:// URL"),
        ("{model: openai/m, timeout: -1}", "litellm_params.timeout: must be a number > 0"),
        ("{model: openai/m, max_parallel_requests: 0}", "must be an integer >= 1"),
    ],
)
def test_bad_values_are_named(params: str, expected: str) -> None:
    message = _error(f"model_list:\n  - model_name: m\n    litellm_params: {params}\n")
    assert expected in message


@pytest.mark.parametrize(
    ("info", "expected"),
    [
        ("{mode: image_generation}", "model_info.mode: must be one of chat, completion"),
        ("{airlock_tier: on-prem}", "airlock_tier: must be self-hosted or frontier"),
        ("{airlock_region: EU West}", "airlock_region: must be 1-32 of a-z"),
        ("{airlock_quality: 2}", "airlock_quality: must be between 0 and 1"),
        ("{input_cost_per_token: -1}", "input_cost_per_token: must be a number >= 0"),
        ("{supports_function_calling: maybe}", "must be true or false"),
    ],
)
def test_bad_model_info_is_named(info: str, expected: str) -> None:
    message = _error(
        "model_list:\n  - model_name: m\n    litellm_params: {model: openai/m}\n"
        f"    model_info: {info}\n"
    )
    assert expected in message


def test_routing_settings_conflicts_are_refused() -> None:
    message = _error(
        """
        model_list:
          - model_name: a
            litellm_params: {model: openai/a}
          - model_name: b
            litellm_params: {model: openai/b}
        router_settings:
          num_retries: 2
          fallbacks: [{"a": ["b"]}]
        litellm_settings:
          num_retries: 5
          fallbacks: [{"a": []}]
        """
    )
    assert "litellm_settings.num_retries: differs from router_settings" in message
    assert "litellm_settings.fallbacks[0].a: conflicts with another fallback list" in message


def test_structure_errors() -> None:
    assert "model_list: must be a non-empty list" in _error("model_list: []\n")
    assert "model_list[0]: must be a mapping" in _error("model_list: [gpt-4o]\n")
    assert "airlock_ignore: must be a list of key paths" in _error(
        "model_list:\n  - {model_name: m, litellm_params: {model: openai/m}}\n"
        "airlock_ignore: litellm_settings\n"
    )


def _write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_load_settings_reads_a_litellm_file(tmp_path: Path) -> None:
    path = _write(tmp_path / "litellm.yaml", DOCS_LOAD_BALANCING)
    settings = load_settings(path, environ={})
    assert [m.name for m in settings.app.models] == ["zephyr-beta", "gpt-4o", "gpt-3.5-turbo-16k"]
    assert settings.config_path == path


def test_airlock_validation_errors_say_the_file_was_imported(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "litellm.yaml",
        """
        model_list:
          - model_name: a
            litellm_params: {model: openai/a}
        router_settings:
          fallbacks: [{"a": ["not-declared"]}]
        """,
    )
    with pytest.raises(ConfigError) as info:
        load_app_config(path)
    message = str(info.value)
    assert "(imported from LiteLLM format)" in message
    assert "routing.fallbacks names an unknown model 'not-declared'" in message


def test_cli_lists_imported_models_and_refuses_inline_keys(tmp_path: Path) -> None:
    runner = CliRunner()
    good = _write(tmp_path / "good.yaml", DOCS_LOAD_BALANCING)
    result = runner.invoke(build_app(), ["models", "--config", str(good), "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [(r["name"], r["tier"]) for r in rows] == [
        ("zephyr-beta", "self-hosted"),
        ("gpt-4o", "frontier"),
        ("gpt-3.5-turbo-16k", "frontier"),
    ]
    assert rows[0]["deployments"] == ["openai-compatible@default"] * 3

    bad = _write(
        tmp_path / "bad.yaml",
        f"""
        model_list:
          - model_name: gpt-4o
            litellm_params: {{model: openai/gpt-4o, api_key: {SECRET}}}
        """,
    )
    result = runner.invoke(build_app(), ["models", "--config", str(bad)])
    assert result.exit_code == 2
    assert "inline API key is not accepted" in result.output
    assert SECRET not in result.output


# -- a real gateway serving a LiteLLM config --------------------------------------------


class _Upstream(BaseHTTPRequestHandler):
    """The smallest OpenAI-compatible server: /v1/models and a fixed chat answer."""

    seen: list[dict[str, Any]]

    def log_message(self, format: str, *args: Any) -> None:
        del format, args  # keep pytest output clean

    def _json(self, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self._json({"object": "list", "data": [{"id": "tiny", "object": "model"}]})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        self.seen.append({"auth": self.headers.get("authorization"), "model": body["model"]})
        self._json(
            {
                "id": "chatcmpl-1",
                "object": "chat.completion",
                "created": 1,
                "model": body["model"],
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": "pong"},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
            }
        )


@pytest.fixture
def upstream() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    seen: list[dict[str, Any]] = []
    handler = type("Handler", (_Upstream,), {"seen": seen})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1", seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_serve_with_a_litellm_config(
    tmp_path: Path, upstream: tuple[str, list[dict[str, Any]]]
) -> None:
    base, seen = upstream
    config = _write(
        tmp_path / "litellm.yaml",
        f"""
        model_list:
          - model_name: tiny-chat
            litellm_params:
              model: hosted_vllm/tiny
              api_base: {base}
              api_key: os.environ/TINY_UPSTREAM_KEY
          - model_name: tiny-chat
            litellm_params:
              model: hosted_vllm/tiny
              api_base: {base}
              api_key: os.environ/TINY_UPSTREAM_KEY
          - model_name: tiny-backup
            litellm_params:
              model: openai/tiny
              api_base: {base}
        router_settings:
          fallbacks: [{{"tiny-chat": ["tiny-backup"]}}]
          routing_strategy: simple-shuffle
        airlock_ignore: [router_settings.routing_strategy]
        """,
    )
    gw = start_gateway(
        tmp_path / "home", config=config, env={"TINY_UPSTREAM_KEY": "upstream-test-key"}
    )
    try:
        headers = {"authorization": f"Bearer {gw.master_key}"}
        listed = httpx.get(gw.api_base + "/models", headers=headers, timeout=10)
        assert listed.status_code == 200, listed.text
        names = {m["id"] for m in listed.json()["data"]}
        assert {"tiny-chat", "tiny-backup"} <= names
        reply = httpx.post(
            gw.api_base + "/chat/completions",
            headers=headers,
            json={"model": "tiny-chat", "messages": [{"role": "user", "content": "ping"}]},
            timeout=30,
        )
        assert reply.status_code == 200, reply.text
        assert reply.json()["choices"][0]["message"]["content"] == "pong"
        assert reply.headers["x-airlock-route"] == "tiny-chat"
        # The key came from the environment variable the LiteLLM file named.
        assert seen[-1] == {"auth": "Bearer upstream-test-key", "model": "tiny"}
    finally:
        gw.stop()
