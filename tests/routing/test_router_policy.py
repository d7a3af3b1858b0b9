"""Privacy and region policy in the router: every candidate, retry and fallback obeys it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from airlock.access.principal import Principal, PrivacyPolicy
from airlock.config import AppConfig, PrivacyConfig
from airlock.errors import PolicyViolationError, ServiceUnavailableError
from airlock.providers.registry import builtin_registry
from airlock.providers.resources import Resources
from airlock.routing.router import AUTO, Router, RouteRequest, effective_policy
from airlock.routing.table import ModelTable


def _dep(region: str, port: int) -> dict[str, Any]:
    return {
        "provider": "openai-compatible",
        "base_url": f"http://127.0.0.1:{port}/v1",
        "region": region,
    }


def _config(**overrides: Any) -> AppConfig:
    models: list[dict[str, Any]] = [
        {
            "name": "local-small",
            "tier": "self-hosted",
            "quality": 0.3,
            "price": {"input_per_mtok": 0.05, "output_per_mtok": 0.1},
            "deployments": [_dep("eu-west", 9001), _dep("us-east", 9002)],
        },
        {
            "name": "local-big",
            "tier": "self-hosted",
            "quality": 0.6,
            "price": {"input_per_mtok": 0.3, "output_per_mtok": 0.6},
            "deployments": [_dep("us-east", 9003)],
        },
        {
            "name": "frontier",
            "tier": "frontier",
            "quality": 0.95,
            "price": {"input_per_mtok": 2.5, "output_per_mtok": 10},
            "deployments": [_dep("us-east", 9004), _dep("eu-west", 9005)],
            **overrides.pop("frontier", {}),
        },
    ]
    raw: dict[str, Any] = {
        "models": models,
        "routing": {
            "fallbacks": {"frontier": ["local-big", "local-small"], "local-big": ["frontier"]},
            "auto": {"threshold": 0.5},
        },
    }
    raw.update(overrides)
    return AppConfig.model_validate(raw)


class FixedScorer:
    def __init__(self, value: float) -> None:
        self.value = value

    def score(self, text: str) -> float:
        return self.value


def _router(tmp_path: Path, score: float = 0.9, **overrides: Any) -> Router:
    app = _config(**overrides)
    table = ModelTable.build(app, builtin_registry(), Resources(tmp_path))
    return Router(table, app.routing, scorer=FixedScorer(score), privacy=app.privacy)


def _who(
    regions: set[str] | None = None,
    policy: PrivacyPolicy | None = None,
    models: set[str] | None = None,
) -> Principal:
    return Principal(
        id="key_test",
        kind="api_key",
        tenant="t1",
        name="test",
        allowed_regions=None if regions is None else frozenset(regions),
        allowed_models=None if models is None else frozenset(models),
        privacy_policy=policy,
    )


def _route(
    router: Router, model: str, principal: Principal, sensitive: bool, pseudo: bool = True
) -> Any:
    req = RouteRequest(
        model=model, capability="chat", text="x", sensitive=sensitive, can_pseudonymize=pseudo
    )
    return router.route(req, principal)


def test_not_sensitive_complex_request_may_go_to_the_frontier(tmp_path: Path) -> None:
    decision = _route(_router(tmp_path), AUTO, _who(), sensitive=False)
    assert decision.model.name == "frontier"
    assert decision.reason == "auto:complex"


def test_sensitive_auto_request_stays_self_hosted_everywhere(tmp_path: Path) -> None:
    decision = _route(_router(tmp_path), AUTO, _who(), sensitive=True)
    assert decision.model.config.tier == "self-hosted"
    assert all(d.model.tier == "self-hosted" for d in decision.candidates)
    assert decision.reason == "policy:sensitive"
    # a simple request would have stayed self-hosted anyway: the scorer's reason stands
    simple = _route(_router(tmp_path, score=0.1), AUTO, _who(), sensitive=True)
    assert simple.reason == "auto:simple"


def test_sensitive_request_for_a_frontier_model_falls_back_only_to_self_hosted(
    tmp_path: Path,
) -> None:
    decision = _route(_router(tmp_path), "frontier", _who(), sensitive=True)
    assert decision.candidates, "the fallback chain has self-hosted models"
    assert {d.model.name for d in decision.candidates} == {"local-big", "local-small"}
    assert decision.reason == "fallback:policy"


def test_sensitive_request_never_reaches_a_frontier_fallback(tmp_path: Path) -> None:
    # local-big falls back to frontier; a sensitive request must not follow that link.
    decision = _route(_router(tmp_path), "local-big", _who(), sensitive=True)
    assert [d.model.name for d in decision.candidates] == ["local-big"] * 3


def test_no_compliant_deployment_is_a_clear_503(tmp_path: Path) -> None:
    router = _router(tmp_path, routing={"fallbacks": {}, "auto": {"threshold": 0.5}})
    with pytest.raises(ServiceUnavailableError) as info:
        _route(router, "frontier", _who(), sensitive=True)
    assert info.value.code == "no_compliant_deployment"
    assert "not sent to any external API" in info.value.message


def test_pseudonymize_policy_on_the_model_allows_the_frontier(tmp_path: Path) -> None:
    router = _router(tmp_path, frontier={"privacy_policy": "pseudonymize"})
    decision = _route(router, "frontier", _who(), sensitive=True)
    assert decision.candidates[0].model.name == "frontier"
    # an endpoint that cannot pseudonymise (embeddings, completions) stays self-hosted
    decision = _route(router, "frontier", _who(), sensitive=True, pseudo=False)
    assert all(d.model.tier == "self-hosted" for d in decision.candidates)


def test_a_key_policy_can_only_tighten_the_model_policy(tmp_path: Path) -> None:
    router = _router(tmp_path, frontier={"privacy_policy": "pseudonymize"})
    decision = _route(router, "frontier", _who(policy="self-hosted-only"), sensitive=True)
    assert all(d.model.tier == "self-hosted" for d in decision.candidates)
    # and a lax key policy does not loosen the default (self-hosted-only)
    plain = _router(tmp_path)
    decision = _route(plain, "frontier", _who(policy="pseudonymize"), sensitive=True)
    assert all(d.model.tier == "self-hosted" for d in decision.candidates)


def test_block_policy_refuses_sensitive_requests_with_403(tmp_path: Path) -> None:
    router = _router(tmp_path, privacy={"default_policy": "block"})
    with pytest.raises(PolicyViolationError) as info:
        _route(router, AUTO, _who(), sensitive=True)
    assert info.value.code == "sensitive_data_blocked"
    assert info.value.status_code == 403
    # the same key's non-sensitive request is served
    assert _route(router, AUTO, _who(), sensitive=False).model.name == "frontier"


def test_region_pinning_applies_to_replicas_retries_and_fallbacks(tmp_path: Path) -> None:
    eu = _who(regions={"eu-west"})
    decision = _route(_router(tmp_path), "frontier", eu, sensitive=False)
    assert decision.candidates
    assert {d.region for d in decision.candidates} == {"eu-west"}
    # local-big has no eu replica: its fallback chain (frontier) is served in eu only
    decision = _route(_router(tmp_path), "local-big", eu, sensitive=False)
    assert {d.region for d in decision.candidates} == {"eu-west"}
    assert {d.model.name for d in decision.candidates} == {"frontier"}


def test_region_and_sensitivity_together_fail_closed(tmp_path: Path) -> None:
    router = _router(tmp_path, routing={"fallbacks": {}, "auto": {"threshold": 0.5}})
    with pytest.raises(ServiceUnavailableError):
        # local-big runs only in us-east; an eu-only caller with sensitive data has nowhere
        _route(router, "local-big", _who(regions={"eu-west"}), sensitive=True)
    with pytest.raises(PolicyViolationError):
        _route(router, "local-big", _who(regions={"ap-south"}), sensitive=False)


def test_sensitive_auto_with_only_frontier_allowed_models_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ServiceUnavailableError):
        _route(_router(tmp_path), AUTO, _who(models={"frontier"}), sensitive=True)


@pytest.mark.parametrize(
    ("model_policy", "key_policy", "expected"),
    [
        (None, None, "self-hosted-only"),
        ("pseudonymize", None, "pseudonymize"),
        ("pseudonymize", "block", "block"),
        ("block", "pseudonymize", "block"),
        (None, "pseudonymize", "self-hosted-only"),
        ("self-hosted-only", "block", "block"),
    ],
)
def test_effective_policy_is_the_stricter_of_model_and_key(
    model_policy: PrivacyPolicy | None, key_policy: PrivacyPolicy | None, expected: str
) -> None:
    app = _config(frontier={"privacy_policy": model_policy} if model_policy else {})
    frontier = next(m for m in app.models if m.name == "frontier")
    assert effective_policy(_who(policy=key_policy), frontier, PrivacyConfig()) == expected
