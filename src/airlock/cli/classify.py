"""``airlock classify`` and ``airlock route explain``: the router's view of prompts, offline.

Both load the same config as ``serve`` and run the same detector, scorer and router,
without starting any model or making any network call.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from airlock.access.authenticate import MASTER_PRINCIPAL
from airlock.config import ConfigError, Settings, load_settings
from airlock.errors import AirlockError
from airlock.privacy.detector import Detector, Verdict
from airlock.providers.registry import builtin_registry
from airlock.providers.resources import Resources
from airlock.routing.router import AUTO, RouteDecision, Router, RouteRequest
from airlock.routing.scorer import ComplexityScorer
from airlock.routing.table import ModelTable

__all__ = ["register"]

ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", envvar="AIRLOCK_CONFIG", help="YAML config (default: embedded)."),
]


@dataclass(frozen=True, slots=True)
class Classifier:
    detector: Detector
    scorer: ComplexityScorer
    router: Router

    def verdict(self, prompt: str) -> Verdict:
        return self.detector.detect(prompt)

    def route(self, prompt: str, sensitive: bool) -> RouteDecision:
        # Exactly what ``POST /v1/chat/completions`` asks the router for a single user
        # message: chat can pseudonymise, so a ``pseudonymize`` policy may pick a
        # frontier model here as it would in the gateway.
        req = RouteRequest(
            model=AUTO,
            capability="chat",
            text=prompt,
            sensitive=sensitive,
            can_pseudonymize=True,
            estimated_tokens=(len(prompt) + 3) // 4,
        )
        return self.router.route(req, MASTER_PRINCIPAL)


def _pseudonymized(decision: RouteDecision, sensitive: bool) -> bool:
    """Whether the gateway would pseudonymise before the first attempt (as it does for a
    sensitive request bound for a frontier deployment)."""
    first = decision.candidates[0] if decision.candidates else None
    return sensitive and first is not None and first.model.tier != "self-hosted"


def _deployment_ids(decision: RouteDecision) -> list[str]:
    """Candidate deployments in attempt order, each once (retries repeat them)."""
    return list(dict.fromkeys(d.id for d in decision.candidates))


@contextmanager
def _classifier(config: Path | None) -> Iterator[Classifier]:
    try:
        settings: Settings = load_settings(config)
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    # Providers are constructed (to know tiers and regions) but never started.
    try:
        table = ModelTable.build(settings.app, builtin_registry(), Resources(settings.home))
    except (KeyError, ValueError) as exc:
        # An unknown provider or a deployment missing a required setting: a config
        # error, reported like the others rather than as a traceback.
        message = exc.args[0] if exc.args else type(exc).__name__
        typer.echo(f"error: {message}", err=True)
        raise typer.Exit(2) from None
    scorer = ComplexityScorer.load()
    router = Router(table, settings.app.routing, scorer=scorer, privacy=settings.app.privacy)
    yield Classifier(Detector(), scorer, router)


def _line(clf: Classifier, item: dict[str, Any]) -> dict[str, Any]:
    prompt = item["prompt"]
    verdict = clf.verdict(prompt)
    out: dict[str, Any] = {
        "id": item.get("id"),
        "sensitive": verdict.sensitive,
        "entities": [{"type": e.type, "start": e.start, "end": e.end} for e in verdict.entities],
        "complexity": round(clf.scorer.score(prompt), 6),
    }
    try:
        decision = clf.route(prompt, verdict.sensitive)
    except AirlockError as exc:
        out["route"] = None
        out["route_error"] = exc.code or exc.error_type
        return out
    out["route"] = decision.model.name
    if _pseudonymized(decision, verdict.sensitive):
        out["pseudonymized"] = True
    return out


def _reject_constant(name: str) -> Any:
    # NaN and Infinity are not JSON (RFC 8259); echoing one back as an id would make
    # the output line unparseable for strict readers.
    raise ValueError(f"{name} is not valid JSON")


def _parse(number: int, raw: bytes) -> dict[str, Any] | str:
    """The item on one input line, or why it was rejected (never the line itself)."""
    try:
        # RFC 8259 JSON text is UTF-8, whatever the locale; a BOM is tolerated on line 1.
        text = raw.decode("utf-8-sig" if number == 1 else "utf-8")
    except UnicodeDecodeError:
        return "not valid UTF-8"
    try:
        item = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        # exc.msg is the parser's fixed wording ("Expecting value"); no input in it.
        return f"not valid JSON ({exc.msg} at column {exc.colno})"
    except ValueError:
        return "not valid JSON (NaN or Infinity)"
    if not isinstance(item, dict):
        return "expected a JSON object"
    if not isinstance(item.get("prompt"), str):
        return "expected a string 'prompt'"
    return item


def classify(config: ConfigOpt = None) -> None:
    """Read JSON lines {"id", "prompt"} on stdin; write one verdict line per input."""
    bad = 0
    with _classifier(config) as clf:
        # Bytes in, ASCII JSON out: offsets must not depend on the locale's encoding,
        # and an id holding any character (even a lone surrogate) still prints.
        for number, raw in enumerate(sys.stdin.buffer, start=1):
            if not raw.strip():
                continue
            item = _parse(number, raw)
            if isinstance(item, str):
                # The line itself is never echoed: it may be a prompt.
                typer.echo(f"error: line {number}: {item}", err=True)
                bad += 1
                continue
            sys.stdout.write(json.dumps(_line(clf, item)) + "\n")
            sys.stdout.flush()
    if bad:
        raise typer.Exit(1)


def _read_stdin_prompt() -> str:
    try:
        return sys.stdin.buffer.read().decode("utf-8-sig")
    except UnicodeDecodeError:
        typer.echo("error: the prompt on stdin is not valid UTF-8", err=True)
        raise typer.Exit(2) from None


def explain(
    prompt: Annotated[str, typer.Argument(help="The prompt to route ('-' reads stdin).")],
    config: ConfigOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Say which model ``auto`` would choose for PROMPT, and why."""
    if prompt == "-":
        prompt = _read_stdin_prompt()
    with _classifier(config) as clf:
        verdict = clf.verdict(prompt)
        score = clf.scorer.score(prompt)
        features = clf.scorer.explain(prompt)[:6]
        error: AirlockError | None = None
        decision: RouteDecision | None = None
        try:
            decision = clf.route(prompt, verdict.sensitive)
        except AirlockError as exc:
            error = exc
        # What the same prompt would get without its sensitive data: shows when the
        # privacy policy, not complexity, decided the route.
        unconstrained: str | None = None
        if verdict.sensitive:
            try:
                unconstrained = clf.route(prompt, False).model.name
            except AirlockError:
                unconstrained = None
        threshold = clf.router.threshold
    pseudonymized = decision is not None and _pseudonymized(decision, verdict.sensitive)
    reason: str | None = None
    if decision is not None:
        reason = "policy:pseudonymize" if pseudonymized else decision.reason
    elif error is not None:
        reason = error.code or error.error_type
    info: dict[str, Any] = {
        "sensitive": verdict.sensitive,
        "entity_counts": verdict.counts(),
        "topics": sorted(verdict.topics),
        "complexity": round(score, 4),
        "threshold": round(threshold, 4),
        "top_features": [{"feature": n, "contribution": round(v, 4)} for n, v in features],
        "route": decision.model.name if decision else None,
        "reason": reason,
        "pseudonymized": pseudonymized,
        "route_if_not_sensitive": unconstrained,
        "deployments": _deployment_ids(decision) if decision else [],
    }
    if as_json:
        typer.echo(json.dumps(info))
        return
    typer.echo(f"route:      {info['route'] or 'refused'} ({info['reason']})")
    if error is not None:
        typer.echo(f"why:        {error.message}")
    typer.echo(
        f"complexity: {info['complexity']} (strong model at >= {info['threshold']}: "
        f"{'yes' if score >= threshold else 'no'})"
    )
    typer.echo(
        "sensitive:  "
        + (
            "yes: " + ", ".join(f"{t} x{n}" for t, n in verdict.counts().items())
            if verdict.sensitive
            else "no"
        )
        + ("" if not verdict.topics else f" (topics: {', '.join(sorted(verdict.topics))})")
    )
    if pseudonymized:
        typer.echo("privacy:    pseudonymised before it leaves (policy: pseudonymize)")
    elif verdict.sensitive and unconstrained is not None and unconstrained != info["route"]:
        typer.echo(f"privacy:    without the sensitive data it would go to {unconstrained}")
    typer.echo("features:   " + ", ".join(f"{n} {v:+.3f}" for n, v in features))
    if decision is not None:
        typer.echo(f"candidates: {', '.join(info['deployments'])}")


def register(app: typer.Typer) -> None:
    app.command("classify")(classify)
    route = typer.Typer(help="Explain routing decisions.", no_args_is_help=True)
    route.command("explain")(explain)
    app.add_typer(route, name="route")
