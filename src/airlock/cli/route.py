"""`airlock train-router` and `airlock eval-router`: offline training and evaluation."""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Annotated

import typer

from airlock.errors import AirlockError
from airlock.routing.evaluation import (
    SPLIT_SALT,
    SPLIT_TRAIN_FRACTION,
    PlotUnavailableError,
    SplitName,
    evaluate_labelled,
    evaluate_routers,
    file_sha256,
    load_labelled_csv,
    load_routing_csv,
    plot_reports,
    render_text,
    reports_to_dict,
    split_rows,
)
from airlock.routing.scorer import (
    ComplexityScorer,
    TrainingOptions,
    dump_weights,
    load_weights,
    train_scorer,
)

__all__ = ["register"]

BUILTIN = "builtin"


class Split(StrEnum):
    all = "all"
    train = "train"
    test = "test"


def _split_name(split: Split) -> SplitName:
    names: dict[Split, SplitName] = {Split.all: "all", Split.train: "train", Split.test: "test"}
    return names[split]


def _fail(message: str, code: int = 1) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def _airlock_version() -> str:
    try:
        return version("airlock")
    except PackageNotFoundError:
        return "unknown"


def train_router(
    data: Annotated[Path, typer.Option(help="RouteLLM-format CSV to learn from.")],
    out: Annotated[Path, typer.Option(help="Where to write the weight file (JSON).")],
    split: Annotated[
        Split, typer.Option(help="Rows to train on: the deterministic 'train' part or 'all'.")
    ] = Split.train,
    l2: Annotated[float, typer.Option(help="Ridge strength.", min=1e-9)] = 10.0,
) -> None:
    """Learn the complexity scorer's weights offline (numpy only, deterministic)."""
    if split is Split.test:
        raise _fail("refusing to train on the held-out 'test' split", 2)
    try:
        rows = split_rows(load_routing_csv(data), _split_name(split))
        options = TrainingOptions(l2=l2)
        weights = train_scorer(
            [r.prompt for r in rows],
            [r.weak_correct for r in rows],
            [r.strong_correct for r in rows],
            options,
            metadata={
                "data_sha256": file_sha256(data),
                "split": split.value,
                "split_salt": SPLIT_SALT,
                "split_train_fraction": SPLIT_TRAIN_FRACTION,
                "airlock_version": _airlock_version(),
            },
        )
        dump_weights(weights, out)
    except AirlockError as exc:
        raise _fail(exc.message) from exc
    except ValueError as exc:
        raise _fail(f"cannot train on {data}: {exc}") from exc
    except OSError as exc:
        raise _fail(f"cannot write {out}: {exc.strerror}") from exc
    cal = weights.calibration
    typer.echo(
        f"trained on {len(rows)} rows ({split.value} split) -> {out}; "
        f"threshold for 30% strong calls: {cal.threshold_for_share(0.3):.4f}; "
        f"out-of-fold share for 50% of the quality gap: {cal.share_for_quality(0.5):.1%}"
    )


def _load_scorer(spec: str) -> tuple[ComplexityScorer, str | None]:
    if spec == BUILTIN:
        scorer = ComplexityScorer.load()
    else:
        scorer = ComplexityScorer(load_weights(Path(spec)))
    trained_on = scorer.weights.metadata.get("data_sha256")
    return scorer, trained_on if isinstance(trained_on, str) else None


def eval_router(
    data: Annotated[Path, typer.Option(help="RouteLLM-format CSV to evaluate on.")],
    scorer: Annotated[
        str, typer.Option(help=f"'{BUILTIN}' (packaged weights) or a weight file path.")
    ] = BUILTIN,
    split: Annotated[
        Split, typer.Option(help="Rows to evaluate: 'all', or the deterministic 'train'/'test'.")
    ] = Split.all,
    plot: Annotated[
        Path | None, typer.Option(help="Write the quality/cost curve PNG here.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Accuracy vs share of strong calls, CPT(50%), CPT(80%), APGR, with baselines."""
    try:
        complexity, trained_on = _load_scorer(scorer)
        rows = split_rows(load_routing_csv(data), _split_name(split))
        if not rows:
            raise _fail(f"the '{split.value}' split of {data} is empty")
        reports = evaluate_routers(rows, {"airlock scorer": complexity.score})
        if not reports:
            raise _fail("no subset of the data has a weak/strong quality gap to evaluate")
        overlap = (
            trained_on is not None and split is not Split.test and trained_on == (file_sha256(data))
        )
        if plot is not None:
            plot_reports(reports, plot)
    except AirlockError as exc:
        raise _fail(exc.message) from exc
    except PlotUnavailableError as exc:
        raise _fail(str(exc)) from exc
    except OSError as exc:
        raise _fail(f"cannot write the plot: {exc.strerror}") from exc
    if overlap:
        typer.echo(
            "warning: these weights were trained on this file; only --split test is held out",
            err=True,
        )
    if as_json:
        doc = {
            "data": str(data),
            "split": split.value,
            "scorer": scorer,
            "subsets": reports_to_dict(reports),
        }
        sys.stdout.write(json.dumps(doc) + "\n")
    else:
        typer.echo(render_text(reports), nl=False)


def eval_router_labelled(
    prompts: Annotated[
        Path, typer.Option(help="CSV with columns prompt and expected (weak|strong).")
    ],
    scorer: Annotated[
        str, typer.Option(help=f"'{BUILTIN}' (packaged weights) or a weight file path.")
    ] = BUILTIN,
    strong_share: Annotated[
        float, typer.Option(help="Configured share of strong calls.", min=0.0, max=1.0)
    ] = 0.3,
    threshold: Annotated[
        float | None, typer.Option(help="Explicit score threshold (wins over the share).")
    ] = None,
) -> None:
    """Share sent strong and agreement with hand labels, at the configured threshold."""
    try:
        complexity, _ = _load_scorer(scorer)
        rows = load_labelled_csv(prompts)
    except AirlockError as exc:
        raise _fail(exc.message) from exc
    cut = (
        threshold if threshold is not None else complexity.threshold_for_strong_share(strong_share)
    )
    typer.echo(evaluate_labelled(rows, complexity.score, cut).render(), nl=False)


def register(app: typer.Typer) -> None:
    app.command("train-router")(train_router)
    app.command("eval-router")(eval_router)
    app.command("eval-router-labelled")(eval_router_labelled)
