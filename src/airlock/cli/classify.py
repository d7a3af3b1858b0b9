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
        req = RouteRequest(
            model=AUTO,
            capability="chat",
            text=prompt,
            sensitive=sensitive,
            estimated_tokens=(len(prompt) + 3) // 4,
        )
        return self.router.route(req, MASTER_PRINCIPAL)


@contextmanager
def _classifier(config: Path | None) -> Iterator[Classifier]:
    try:
        settings: Settings = load_settings(config)
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    # Providers are constructed (to know tiers and regions) but never started.
    table = ModelTable.build(settings.app, builtin_registry(), Resources(settings.home))
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
        out["route"] = clf.route(prompt, verdict.sensitive).model.name
    except AirlockError as exc:
        out["route"] = None
        out["route_error"] = exc.code or exc.error_type
    return out


def classify(config: ConfigOpt = None) -> None:
    """Read JSON lines {"id", "prompt"} on stdin; write one verdict line per input."""
    bad = 0
    with _classifier(config) as clf:
        for number, raw in enumerate(sys.stdin, start=1):
            if not raw.strip():
                continue
            try:
                item = json.loads(raw)
            except json.JSONDecodeError:
                item = None
            if not isinstance(item, dict) or not isinstance(item.get("prompt"), str):
                # The line itself is never echoed: it may be a prompt.
                typer.echo(
                    f"error: line {number}: expected a JSON object with a string 'prompt'",
                    err=True,
                )
                bad += 1
                continue
            sys.stdout.write(json.dumps(_line(clf, item), ensure_ascii=False) + "\n")
            sys.stdout.flush()
    if bad:
        raise typer.Exit(1)


def explain(
    prompt: Annotated[str, typer.Argument(help="The prompt to route ('-' reads stdin).")],
    config: ConfigOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Say which model ``auto`` would choose for PROMPT, and why."""
    if prompt == "-":
        prompt = sys.stdin.read()
    with _classifier(config) as clf:
        verdict = clf.verdict(prompt)
        score = clf.scorer.score(prompt)
        features = clf.scorer.explain(prompt)[:6]
        try:
            decision: RouteDecision | None = clf.route(prompt, verdict.sensitive)
            error = None
        except AirlockError as exc:
            decision, error = None, exc
        threshold = clf.router.threshold
    info: dict[str, Any] = {
        "sensitive": verdict.sensitive,
        "entity_counts": verdict.counts(),
        "topics": sorted(verdict.topics),
        "complexity": round(score, 4),
        "threshold": round(threshold, 4),
        "top_features": [{"feature": n, "contribution": round(v, 4)} for n, v in features],
        "route": decision.model.name if decision else None,
        "reason": decision.reason if decision else (error.code if error else None),
        "deployments": [d.id for d in decision.candidates] if decision else [],
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
    typer.echo("features:   " + ", ".join(f"{n} {v:+.3f}" for n, v in features))
    if decision is not None:
        typer.echo(f"candidates: {', '.join(info['deployments'])}")


def register(app: typer.Typer) -> None:
    app.command("classify")(classify)
    route = typer.Typer(help="Explain routing decisions.", no_args_is_help=True)
    route.command("explain")(explain)
    app.add_typer(route, name="route")
