"""Choosing who serves a request: the model (explicit or ``auto``), then its deployments.

Policy is applied here, once, to the whole candidate list — replicas, retries and
fallbacks alike — so nothing downstream can pick a deployment outside it:
- a caller reaches only the models and regions its principal allows (invariant 3);
- a sensitive request reaches only ``self-hosted`` deployments (invariant 2).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal, Protocol

from airlock.access.principal import Principal
from airlock.config import Capability, ModelConfig, PolicyName, PrivacyConfig, RoutingConfig
from airlock.errors import (
    ModelNotFoundError,
    PermissionDeniedError,
    PolicyViolationError,
    ServiceUnavailableError,
    UnsupportedParameterError,
)
from airlock.routing.balancer import Balancer, prefix_key
from airlock.routing.table import Deployment, ModelEntry, ModelTable

__all__ = ["AUTO", "RouteDecision", "RouteRequest", "Router", "Scorer", "effective_policy"]

AUTO = "auto"
Prefer = Literal["cost", "latency", "quality"]


class Scorer(Protocol):
    def score(self, text: str) -> float: ...


_STRICTNESS: dict[PolicyName, int] = {"pseudonymize": 0, "self-hosted-only": 1, "block": 2}


def effective_policy(
    principal: Principal, model: ModelConfig, privacy: PrivacyConfig
) -> PolicyName:
    """How a sensitive request from ``principal`` may be served by ``model``.

    The model's policy (or the default) applies; a key's own policy can only make it
    stricter, so an operator's ``block`` on a model is never loosened by a key.
    """
    policy = model.privacy_policy or privacy.default_policy
    own = principal.privacy_policy
    if own is not None and _STRICTNESS[own] > _STRICTNESS[policy]:
        return own
    return policy


@dataclass(frozen=True, slots=True)
class RouteRequest:
    """What the router may know about a request: metadata, and the text to score."""

    model: str
    capability: Capability
    needs: frozenset[Capability] = frozenset()
    text: str = ""
    # The detector's verdict: when True, each model's privacy policy decides which of
    # its deployments may serve (self-hosted only, pseudonymised frontier, or none).
    sensitive: bool = False
    # Whether the endpoint can pseudonymise the request for a frontier deployment
    # (chat can); otherwise ``pseudonymize`` acts as ``self-hosted-only``.
    can_pseudonymize: bool = False
    prefer: Prefer | None = None
    max_cost_usd: float | None = None
    estimated_tokens: int = 0


@dataclass(frozen=True, slots=True)
class RouteDecision:
    model: ModelEntry
    candidates: tuple[Deployment, ...]
    reason: str
    score: float | None = None
    affinity_key: str | None = None


def _price(entry: ModelEntry) -> float:
    return entry.config.price.input_per_mtok + entry.config.price.output_per_mtok


class Router:
    def __init__(
        self,
        table: ModelTable,
        config: RoutingConfig,
        scorer: Scorer | None = None,
        balancer: Balancer | None = None,
        privacy: PrivacyConfig | None = None,
    ) -> None:
        self._table = table
        self._config = config
        self._scorer = scorer
        self._balancer = balancer or Balancer()
        self._privacy = privacy or PrivacyConfig()

    @property
    def balancer(self) -> Balancer:
        return self._balancer

    def has_auto(self, principal: Principal) -> bool:
        return bool(self._auto_pool(principal, "chat"))

    def policy_for(self, principal: Principal, model: ModelConfig) -> PolicyName:
        return effective_policy(principal, model, self._privacy)

    def _allowed(self, dep: Deployment, principal: Principal, req: RouteRequest) -> bool:
        # Fail closed: a deployment outside the caller's regions is never a candidate.
        if not principal.may_use_region(dep.region):
            return False
        if not req.sensitive:
            return True
        policy = self.policy_for(principal, dep.model)
        if policy == "block":
            return False
        if dep.model.tier == "self-hosted":
            return True
        return policy == "pseudonymize" and req.can_pseudonymize

    def _auto_pool(self, principal: Principal, capability: Capability) -> list[ModelEntry]:
        names = self._config.auto.candidates
        pool = [self._table.lookup(n) for n in names] if names else self._table.all()
        return [
            e
            for e in pool
            if e is not None
            and capability in e.config.capabilities
            and principal.may_use_model(e.name)
        ]

    def _fits(self, entry: ModelEntry, req: RouteRequest) -> bool:
        if not req.needs <= entry.config.capabilities:
            return False
        window = entry.config.context_window
        return window is None or req.estimated_tokens <= window

    def _affordable(self, entry: ModelEntry, req: RouteRequest) -> bool:
        if req.max_cost_usd is None:
            return True
        cost = req.estimated_tokens * entry.config.price.input_per_mtok / 1_000_000
        return cost <= req.max_cost_usd

    def _choose_auto(
        self, req: RouteRequest, principal: Principal, score: float | None = None
    ) -> tuple[ModelEntry, str, float]:
        pool = [
            e
            for e in self._auto_pool(principal, req.capability)
            if self._fits(e, req)
            and self._affordable(e, req)
            and any(self._allowed(d, principal, req) for d in e.deployments)
        ]
        if not pool:
            raise self._nothing_compliant(req, principal)
        if score is None:
            score = self._scorer.score(req.text) if self._scorer is not None else 0.0
        threshold = self.threshold
        cheapest_local = sorted(
            (e for e in pool if e.config.tier == "self-hosted"),
            key=lambda e: (_price(e), -e.config.quality),
        )
        best = max(pool, key=lambda e: (e.config.quality, -_price(e)))
        if req.prefer == "quality":
            return best, "auto:prefer-quality", score
        if req.prefer == "cost":
            cheapest = min(pool, key=lambda e: (_price(e), -e.config.quality))
            return cheapest, "auto:prefer-cost", score
        if req.prefer == "latency":
            fastest = min(
                pool, key=lambda e: (-sum(d.breaker.available() for d in e.deployments), _price(e))
            )
            return fastest, "auto:prefer-latency", score
        if score >= threshold:
            return best, "auto:complex", score
        return (
            (cheapest_local[0] if cheapest_local else min(pool, key=_price)),
            "auto:simple",
            score,
        )

    @property
    def threshold(self) -> float:
        """The complexity score at or above which ``auto`` picks the strong model."""
        auto = self._config.auto
        if auto.threshold is not None:
            return auto.threshold
        # The scorer's calibration (from its training split) maps the configured share
        # of strong calls to a score threshold; without one, scores are taken at face value.
        calibrate = getattr(self._scorer, "threshold_for_strong_share", None)
        if callable(calibrate):
            return float(calibrate(auto.strong_share))
        return 1.0 - auto.strong_share

    def _nothing_compliant(self, req: RouteRequest, principal: Principal) -> Exception:
        if req.sensitive and self._blocked(req, principal):
            return PolicyViolationError(
                "This request contains sensitive data, and the privacy policy for this "
                "key or model blocks such requests. Remove the sensitive data or ask the "
                "operator for a key whose policy allows self-hosted processing.",
                code="sensitive_data_blocked",
            )
        if req.sensitive:
            return ServiceUnavailableError(
                "This request contains sensitive data and may only be served by a "
                "self-hosted deployment in an allowed region, and none is available. "
                "It was not sent to any external API.",
                code="no_compliant_deployment",
            )
        return PolicyViolationError(
            "No deployment you are allowed to use (models, regions, cost limit) can serve "
            "this request.",
            code="no_allowed_deployment",
        )

    def route(self, req: RouteRequest, principal: Principal) -> RouteDecision:
        if req.model == AUTO:
            entry, reason, score = self._choose_auto(req, principal)
            if req.sensitive and self._choice_without_policy(req, principal, score) is not entry:
                reason = "policy:sensitive"
        else:
            found = self._table.lookup(req.model)
            if found is None:
                raise ModelNotFoundError(req.model)
            if not principal.may_use_model(found.name):
                raise PermissionDeniedError(
                    f"Your API key or token is not allowed to use the model '{found.name}'. "
                    "Ask the operator to add it to the key's allowed models.",
                    code="model_not_allowed",
                )
            entry, reason, score = found, "explicit", None
            if req.capability not in entry.config.capabilities:
                raise UnsupportedParameterError(
                    f"The model '{entry.name}' does not support "
                    f"{req.capability.replace('_', ' ')}; it supports: "
                    f"{', '.join(sorted(entry.config.capabilities))}.",
                    param="model",
                )
        key = prefix_key(req.text)
        candidates = self._candidates(entry, req, principal, key)
        if not candidates:
            raise self._nothing_compliant(req, principal)
        if candidates[0].model is not entry.config:
            reason = "fallback:context" if not self._fits(entry, req) else "fallback:policy"
        return RouteDecision(entry, tuple(candidates), reason, score, key)

    def _choice_without_policy(
        self, req: RouteRequest, principal: Principal, score: float
    ) -> ModelEntry | None:
        """What ``auto`` would pick were the request not sensitive (for the reason); the
        prompt is not scored again."""
        try:
            return self._choose_auto(replace(req, sensitive=False), principal, score)[0]
        except (PolicyViolationError, ServiceUnavailableError):
            return None

    def _blocked(self, req: RouteRequest, principal: Principal) -> bool:
        """Whether ``block`` (not a lack of deployments) is why nothing may serve."""
        if req.model == AUTO:
            pool = self._auto_pool(principal, req.capability)
        else:
            found = self._table.lookup(req.model)
            pool = [found] if found is not None else []
        policies = {self.policy_for(principal, e.config) for e in pool}
        return policies == {"block"}

    def _candidates(
        self, entry: ModelEntry, req: RouteRequest, principal: Principal, key: str | None
    ) -> list[Deployment]:
        attempts = self._config.retry.max_attempts
        chain = [entry.name, *self._config.fallbacks.get(entry.name, [])]
        out: list[Deployment] = []
        for name in chain:
            model = self._table.lookup(name)
            if model is None or not principal.may_use_model(name):
                continue
            if req.capability not in model.config.capabilities or not self._fits(model, req):
                continue
            allowed = [d for d in model.deployments if self._allowed(d, principal, req)]
            ordered = self._balancer.order(allowed, key)
            out.extend(_cycle(ordered, attempts if name == entry.name else len(ordered)))
        return out


def _cycle(items: Sequence[Deployment], n: int) -> list[Deployment]:
    if not items:
        return []
    return [items[i % len(items)] for i in range(max(n, len(items)))]
