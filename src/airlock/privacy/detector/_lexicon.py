"""Word lists the rules use, loaded from the package's JSON data (at Detector start-up)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from typing import Any

__all__ = ["Lexicon", "load_lexicon"]


@dataclass(frozen=True, slots=True)
class Lexicon:
    first_names: frozenset[str]
    conditions: tuple[str, ...]
    medications: tuple[str, ...]
    procedures: tuple[str, ...]
    public_figures: frozenset[str]
    public_surnames: frozenset[str]
    topic_words: dict[str, tuple[str, ...]]
    #: Capitalised words that start sentences or addresses but are not names.
    not_names: frozenset[str]
    #: Values that stand for a password rather than being one ("changeme", "required").
    password_placeholders: frozenset[str]
    #: USPS street suffixes: unambiguous ones, and ones that are also common nouns.
    street_suffixes_strong: tuple[str, ...]
    street_suffixes_weak: tuple[str, ...]


def _read(name: str) -> dict[str, Any]:
    text = resources.files("airlock.privacy.detector").joinpath("_data", name).read_text("utf-8")
    data = json.loads(text)
    if not isinstance(data, dict):
        raise TypeError(f"detector data file {name} is not a JSON object")
    return data


def load_lexicon() -> Lexicon:
    names = _read("names.json")
    lex = _read("lexicons.json")
    figures = frozenset(str(f) for f in lex["public_figures"])
    return Lexicon(
        first_names=frozenset(str(n) for n in names["first_names"]),
        conditions=tuple(lex["conditions"]),
        medications=tuple(lex["medications"]),
        procedures=tuple(lex["procedures"]),
        public_figures=figures,
        # "President Lincoln", "Mr. Darwin": a public figure's surname alone.
        public_surnames=frozenset(f.split()[-1] for f in figures if " " in f),
        topic_words={str(k): tuple(v) for k, v in lex["topic_words"].items()},
        not_names=frozenset(lex["not_names"]),
        password_placeholders=frozenset(lex["password_placeholders"]),
        street_suffixes_strong=tuple(lex["street_suffixes_strong"]),
        street_suffixes_weak=tuple(lex["street_suffixes_weak"]),
    )
