"""What routing saves, from our own figures: the real router, ledger and report code.

Industry reports claim 70-80% savings when routine traffic stays self-hosted. This
bench puts a traffic mix through the real ``auto`` router (complexity scorer and the
sensitive-data detector), writes one ledger row per request with the real cost
code, and prints ``airlock report``'s savings against sending every token to the
frontier baseline.

Traffic: the held-out RouteLLM prompts (MMLU, GSM8K; never seen by the scorer) plus the
labelled free-form chat prompts in tests/routing/data/free_form.csv. Token counts:
prompt tokens estimated at 4 characters per token, plus ``--output-tokens`` per answer.

Prices (USD per million tokens):
* frontier: the catalog's list price of ``--baseline`` (default gpt-4o);
* self-hosted: from ``airlock plan`` for Llama 3.3 70B fp8 on 2x A100-80GB at
  ``--gpu-price-per-hour`` per GPU, divided by ``--utilisation`` (the planner's figure
  assumes a full batch all the time; real fleets run well below that).

Run: ``.venv/bin/python bench/savings.py [--strong-share 0.3] [--utilisation 0.3]``
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import tempfile
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from airlock.access.authenticate import MASTER_PRINCIPAL
from airlock.config import AppConfig
from airlock.deploy.plan_types import PlanRequest
from airlock.deploy.planner import plan
from airlock.ledger.db import make_engine
from airlock.ledger.migrate import upgrade_to_head
from airlock.ledger.models import USAGE
from airlock.ledger.prices import load_default_catalog
from airlock.ledger.record import RequestRecord
from airlock.ledger.reports import build_report
from airlock.ledger.writer import usage_row
from airlock.privacy.detector import Detector
from airlock.providers.registry import builtin_registry
from airlock.providers.resources import Resources
from airlock.routing.evaluation import load_routing_csv, split_rows
from airlock.routing.router import AUTO, Router, RouteRequest
from airlock.routing.scorer import ComplexityScorer
from airlock.routing.table import ModelTable

REPO = Path(__file__).resolve().parents[1]
ROUTELLM = REPO.parent / "shared" / "data" / "routellm" / "train.csv"
FREE_FORM = REPO / "tests" / "routing" / "data" / "free_form.csv"


def _self_hosted_price(gpu_price_per_hour: float, utilisation: float) -> tuple[float, float]:
    """(input, output) USD per million tokens for Llama 3.3 70B fp8 on 2x A100-80GB."""
    sized = plan(
        PlanRequest(
            model="llama-3.3-70b-instruct",
            gpu="a100-80gb",
            gpus=2,
            dtype="fp8",
            max_model_len=8192,
            gpu_price_per_hour=gpu_price_per_hour,
        )
    )
    t = sized.throughput
    assert t is not None
    hourly = gpu_price_per_hour * 2 / utilisation
    out = hourly / (t.decode_tokens_per_second * 3600) * 1e6
    inp = hourly / (t.prefill_tokens_per_second * 3600) * 1e6
    return inp, out


def _config(self_in: float, self_out: float, frontier: str, strong_share: float) -> AppConfig:
    catalog = load_default_catalog()
    price = catalog.get(frontier)
    dep = {"provider": "openai-compatible", "base_url": "http://127.0.0.1:9/v1"}
    return AppConfig.model_validate(
        {
            "models": [
                {
                    "name": "llama-3.3-70b",
                    "tier": "self-hosted",
                    "quality": 0.8,
                    "price": {"input_per_mtok": self_in, "output_per_mtok": self_out},
                    "deployments": [dep],
                },
                {
                    "name": frontier,
                    "tier": "frontier",
                    "quality": 0.95,
                    "price": {
                        "input_per_mtok": price.input_per_mtok,
                        "output_per_mtok": price.output_per_mtok,
                    },
                    "deployments": [dep],
                },
            ],
            "routing": {"auto": {"strong_share": strong_share}},
            "ledger": {"baseline_model": frontier},
        }
    )


def _prompts() -> list[tuple[str, str]]:
    held_out = split_rows(load_routing_csv(ROUTELLM), "test")
    out = [(row.family, row.prompt) for row in held_out]
    with FREE_FORM.open(encoding="utf-8") as fh:
        out += [("free-form", row["prompt"]) for row in csv.DictReader(fh)]
    return out


async def _run(args: argparse.Namespace) -> None:
    self_in, self_out = _self_hosted_price(args.gpu_price_per_hour, args.utilisation)
    app = _config(self_in, self_out, args.baseline, args.strong_share)
    prices = {m.name: m.price for m in app.models}
    baseline = prices[args.baseline]
    with tempfile.TemporaryDirectory() as tmp:
        table = ModelTable.build(app, builtin_registry(), Resources(Path(tmp)))
        router = Router(table, app.routing, scorer=ComplexityScorer.load(), privacy=app.privacy)
        detector = Detector()
        engine = make_engine(f"sqlite+aiosqlite:///{tmp}/ledger.db")
        await upgrade_to_head(engine)
        routed: Counter[tuple[str, str]] = Counter()
        rows: list[dict[str, Any]] = []
        for n, (family, prompt) in enumerate(_prompts()):
            sensitive = detector.detect(prompt).sensitive
            tokens_in = (len(prompt) + 3) // 4
            decision = router.route(
                RouteRequest(
                    model=AUTO,
                    capability="chat",
                    text=prompt,
                    sensitive=sensitive,
                    estimated_tokens=tokens_in,
                ),
                MASTER_PRINCIPAL,
            )
            served = decision.model.name
            routed[(family, served)] += 1
            p = prices[served]
            cost = (tokens_in * p.input_per_mtok + args.output_tokens * p.output_per_mtok) / 1e6
            base = (
                tokens_in * baseline.input_per_mtok + args.output_tokens * baseline.output_per_mtok
            ) / 1e6
            record = RequestRecord(
                request_id=f"bench-{n}",
                timestamp=datetime.now(UTC),
                principal_id="bench",
                tenant=family,
                key_kind="api_key",
                endpoint="/v1/chat/completions",
                requested_model=AUTO,
                served_model=served,
                deployment=decision.candidates[0].id,
                provider="openai-compatible",
                region="local",
                tier=decision.model.config.tier,
                route_reason=decision.reason,
                sensitive=sensitive,
                prompt_tokens=tokens_in,
                completion_tokens=args.output_tokens,
                cost_usd=cost,
                baseline_cost_usd=base,
            )
            rows.append(usage_row(f"bench-{n}", record))
        async with engine.begin() as conn:
            await conn.execute(USAGE.insert(), rows)
        report = await build_report(engine, by="tenant")
        await engine.dispose()
    print(
        f"self-hosted Llama 3.3 70B (2x A100-80GB at ${args.gpu_price_per_hour}/GPU-h, "
        f"{args.utilisation:.0%} utilised): ${self_in:.3f} in / ${self_out:.3f} out per Mtok"
    )
    print(
        f"frontier {args.baseline}: ${baseline.input_per_mtok} in / "
        f"${baseline.output_per_mtok} out per Mtok; strong_share {args.strong_share}\n"
    )
    print(
        f"{'traffic':<10} {'requests':>8} {'to frontier':>12} {'cost $':>10} {'baseline $':>11} "
        f"{'savings':>8}"
    )
    for row in report.rows:
        sent = routed[(row.group, args.baseline)]
        pct = f"{row.savings_pct:.1f}%" if row.savings_pct is not None else "-"
        print(
            f"{row.group:<10} {row.requests:>8} {sent / row.requests:>11.1%} "
            f"{row.cost_usd:>10.4f} {row.baseline_cost_usd:>11.4f} {pct:>8}"
        )
    total = report.total
    pct = f"{total.savings_pct:.1f}%" if total.savings_pct is not None else "-"
    print(
        f"{'all':<10} {total.requests:>8} {'':>12} {total.cost_usd:>10.4f} "
        f"{total.baseline_cost_usd:>11.4f} {pct:>8}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default="gpt-4o")
    parser.add_argument("--strong-share", type=float, default=0.3)
    parser.add_argument("--gpu-price-per-hour", type=float, default=1.8)
    parser.add_argument("--utilisation", type=float, default=0.3)
    parser.add_argument("--output-tokens", type=int, default=300)
    asyncio.run(_run(parser.parse_args()))


if __name__ == "__main__":
    main()
