"""RouteLLM-format routing data: reading the CSV and the deterministic held-out split.

A row says whether the weak and the strong model answered a prompt correctly. The split
is a pure function of the prompt text (a salted SHA-256), so it never depends on row
order, the same prompt always lands on the same side, and anyone can recompute it.
"""

from __future__ import annotations

import csv
import hashlib
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from airlock.errors import BadRequestError

__all__ = [
    "SPLIT_SALT",
    "SPLIT_TRAIN_FRACTION",
    "DataFileError",
    "RoutingRow",
    "SplitName",
    "file_sha256",
    "load_routing_csv",
    "prompt_hash",
    "split_rows",
]

SPLIT_SALT = "airlock-router-split-v1"
SPLIT_TRAIN_FRACTION = 0.7
_REQUIRED = ("prompt", "weak_correct", "strong_correct")

SplitName = Literal["all", "train", "test"]


class DataFileError(BadRequestError):
    """The routing data file is missing, unreadable or not in RouteLLM format."""

    default_code = "invalid_routing_data"


@dataclass(frozen=True, slots=True)
class RoutingRow:
    prompt: str
    weak_correct: int
    strong_correct: int
    source: str

    @property
    def family(self) -> str:
        """`gsm8k`, `mmlu` … (the part of `source` before the first slash)."""
        return self.source.split("/", 1)[0]

    @property
    def needs_strong(self) -> int:
        """1 when only the strong model got it right: the case routing exists for."""
        return int(self.weak_correct == 0 and self.strong_correct == 1)


def _flag(value: str, *, line: int, column: str) -> int:
    text = value.strip().lower()
    if text in ("1", "true", "1.0"):
        return 1
    if text in ("0", "false", "0.0"):
        return 0
    raise DataFileError(f"line {line}: column '{column}' must be 0/1 or true/false")


def _row(record: dict[str | Any, str | Any], line: int) -> RoutingRow:
    prompt = record.get("prompt")
    weak = record.get("weak_correct")
    strong = record.get("strong_correct")
    if not isinstance(prompt, str) or not isinstance(weak, str) or not isinstance(strong, str):
        raise DataFileError(f"line {line}: row has too few fields")
    source = record.get("source")
    return RoutingRow(
        prompt=prompt,
        weak_correct=_flag(weak, line=line, column="weak_correct"),
        strong_correct=_flag(strong, line=line, column="strong_correct"),
        source=(source.strip() if isinstance(source, str) else "") or "unknown",
    )


def load_routing_csv(path: Path) -> list[RoutingRow]:
    """Read a RouteLLM-format CSV (`prompt`, `weak_correct`, `strong_correct`[, `source`])."""
    try:
        handle = path.open(encoding="utf-8", newline="")
    except OSError as exc:
        raise DataFileError(f"cannot read routing data file {path}: {exc.strerror}") from exc
    rows: list[RoutingRow] = []
    with handle:
        reader = csv.DictReader(handle)
        try:
            header = reader.fieldnames or []
            missing = [name for name in _REQUIRED if name not in header]
            if missing:
                raise DataFileError(
                    f"routing data file {path} lacks column(s) {', '.join(missing)}; "
                    f"expected {', '.join(_REQUIRED)} and optionally source"
                )
            for record in reader:
                rows.append(_row(record, reader.line_num))
        except (csv.Error, UnicodeDecodeError) as exc:
            raise DataFileError(
                f"routing data file {path} is not valid UTF-8 CSV near line {reader.line_num}"
            ) from exc
    if not rows:
        raise DataFileError(f"routing data file {path} has no rows")
    return rows


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def prompt_hash(prompt: str, salt: str = SPLIT_SALT) -> int:
    """A 64-bit integer from SHA-256(salt NUL prompt): the split's only input."""
    digest = hashlib.sha256(f"{salt}\x00{prompt}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def split_rows(
    rows: Sequence[RoutingRow],
    which: SplitName,
    *,
    train_fraction: float = SPLIT_TRAIN_FRACTION,
    salt: str = SPLIT_SALT,
) -> list[RoutingRow]:
    """Deterministic split, stratified by `source`.

    Within each source the distinct prompts are ordered by `prompt_hash`; the first
    round(train_fraction * n) go to train, the rest to test. A prompt that occurs in
    several rows (or several sources) goes wherever its first source puts it, so no
    prompt text is ever on both sides. Output keeps the input order.
    """
    if which == "all":
        return list(rows)
    if not 0.0 < train_fraction < 1.0:
        raise ValueError("train_fraction must be strictly between 0 and 1")
    by_source: dict[str, list[str]] = defaultdict(list)
    seen: set[str] = set()
    for row in rows:
        if row.prompt not in seen:
            seen.add(row.prompt)
            by_source[row.source].append(row.prompt)
    train_prompts: set[str] = set()
    for prompts in by_source.values():
        ordered = sorted(prompts, key=lambda p: (prompt_hash(p, salt), p))
        train_prompts.update(ordered[: round(train_fraction * len(ordered))])
    want_train = which == "train"
    return [row for row in rows if (row.prompt in train_prompts) == want_train]
