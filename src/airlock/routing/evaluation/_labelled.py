"""Hand-labelled prompts (`prompt`, `expected` weak|strong): does the router agree?

RouteLLM data only measures ranking quality on benchmarks. A labelled set of the
traffic a deployment really sees (tests/routing/data/free_form.csv is one for chat
prompts) answers the product question: at the configured threshold, what share goes
strong, and how often does that match what a person would choose?
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ._data import DataFileError

__all__ = ["LabelledPrompt", "LabelledReport", "evaluate_labelled", "load_labelled_csv"]

Route = Literal["weak", "strong"]


@dataclass(frozen=True, slots=True)
class LabelledPrompt:
    prompt: str
    expected: Route
    row: int  # 1-based data row (a quoted prompt may span several lines of the file)


@dataclass(frozen=True, slots=True)
class LabelledReport:
    rows: int
    threshold: float
    sent_strong: int
    agreed: int
    # Data rows (never prompt text) of the disagreements, and what was expected.
    misses: tuple[tuple[int, Route], ...]

    @property
    def strong_share(self) -> float:
        return self.sent_strong / self.rows

    @property
    def agreement(self) -> float:
        return self.agreed / self.rows

    def render(self) -> str:
        lines = [
            f"{self.rows} labelled prompts, threshold {self.threshold:.4f}: "
            f"{self.strong_share:.1%} sent strong ({self.sent_strong}), agreement "
            f"{self.agreement:.1%} ({self.agreed}/{self.rows})",
        ]
        lines += [f"  row {row}: expected {want}, routed otherwise" for row, want in self.misses]
        return "\n".join(lines) + "\n"


def load_labelled_csv(path: Path) -> list[LabelledPrompt]:
    """Read a CSV with columns `prompt` and `expected` (weak|strong); others are ignored."""
    try:
        handle = path.open(encoding="utf-8", newline="")
    except OSError as exc:
        raise DataFileError(f"cannot read labelled prompts {path}: {exc.strerror}") from exc
    rows: list[LabelledPrompt] = []
    with handle:
        reader = csv.DictReader(handle)
        try:
            header = reader.fieldnames or []
            if "prompt" not in header or "expected" not in header:
                raise DataFileError(f"labelled prompts {path} need columns prompt and expected")
            for record in reader:
                prompt, expected = record.get("prompt"), record.get("expected")
                route: Route
                if expected == "weak":
                    route = "weak"
                elif expected == "strong":
                    route = "strong"
                else:
                    raise DataFileError(
                        f"{path} line {reader.line_num}: 'expected' must be weak or strong"
                    )
                if not isinstance(prompt, str):
                    raise DataFileError(f"{path} line {reader.line_num}: row has too few fields")
                rows.append(LabelledPrompt(prompt, route, len(rows) + 1))
        except (csv.Error, UnicodeDecodeError) as exc:
            raise DataFileError(
                f"labelled prompts {path} are not valid UTF-8 CSV near line {reader.line_num}"
            ) from exc
    if not rows:
        raise DataFileError(f"labelled prompts {path} have no rows")
    return rows


def evaluate_labelled(
    rows: Sequence[LabelledPrompt], score: Callable[[str], float], threshold: float
) -> LabelledReport:
    """Route each prompt as the router does (score >= threshold: strong) and compare."""
    if not rows:
        raise ValueError("no labelled prompts to evaluate")
    sent = [score(r.prompt) >= threshold for r in rows]
    misses = tuple(
        (r.row, r.expected)
        for r, s in zip(rows, sent, strict=True)
        if s != (r.expected == "strong")
    )
    return LabelledReport(
        rows=len(rows),
        threshold=threshold,
        sent_strong=sum(sent),
        agreed=len(rows) - len(misses),
        misses=misses,
    )
