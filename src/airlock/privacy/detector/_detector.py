"""The Detector: runs every rule over a text and turns candidates into a Verdict."""

from __future__ import annotations

import re
from collections.abc import Sequence

from airlock.errors import BadRequestError

from ._contact import ContactRules
from ._health import HealthRules
from ._hits import Hit, resolve_overlaps
from ._ids import IdentifierRules
from ._lexicon import Lexicon, load_lexicon
from ._people import PeopleRules
from ._phrases import PhraseMatcher, fold
from ._secrets import SecretRules
from ._topics import TOPIC_LABEL_PREFIX, topics_of
from ._types import Entity, Verdict

__all__ = ["Detector"]

# A medical term belongs to a named person when it sits this close to the name.
_MEDICAL_WINDOW = 200


def _phrases(lexicon: Lexicon) -> PhraseMatcher:
    pairs = [(t, "medical") for t in lexicon.conditions + lexicon.medications + lexicon.procedures]
    pairs += [(p, "public") for p in sorted(lexicon.public_figures)]
    for topic, words in sorted(lexicon.topic_words.items()):
        pairs += [(w, TOPIC_LABEL_PREFIX + topic) for w in words]
    return PhraseMatcher(pairs)


class Detector:
    """Finds sensitive data in prompt text with rules: regexes, check digits, context words.

    Build one at start-up (it compiles its patterns and loads its word lists) and share
    it: ``detect`` keeps no state between calls and is safe to call from many threads.
    The verdict carries types and offsets only, never the matched text.
    """

    def __init__(self) -> None:
        lexicon = load_lexicon()
        self._phrases = _phrases(lexicon)
        self._ids = IdentifierRules()
        self._contact = ContactRules()
        self._secrets = SecretRules(lexicon)
        self._health = HealthRules()
        self._people = PeopleRules(lexicon)
        self._digit = re.compile(r"[0-9]")

    def detect(self, text: str) -> Verdict:
        """Judge one text; entity offsets index into ``text``."""
        return self.detect_many((text,))

    def detect_many(self, texts: Sequence[str]) -> Verdict:
        """Judge the texts of one request together (messages, tool arguments, inputs).

        Each entity's ``text_index`` says which text its offsets refer to.
        """
        if isinstance(texts, str):
            raise BadRequestError("detect_many expects a sequence of strings, not one string")
        entities: list[Entity] = []
        topics: set[str] = set()
        for index, text in enumerate(texts):
            if not isinstance(text, str):
                raise BadRequestError(
                    f"text {index} is of type {type(text).__name__}, expected a string"
                )
            hits, text_topics = self._scan(text)
            topics |= text_topics
            entities.extend(Entity(h.type, h.start, h.end, h.score, index) for h in hits)
        return Verdict(sensitive=bool(entities), entities=tuple(entities), topics=frozenset(topics))

    def _scan(self, text: str) -> tuple[list[Hit], frozenset[str]]:
        if not text or text.isspace():
            return [], frozenset()
        lower = fold(text)
        hits: list[Hit] = []
        has_digits = self._digit.search(text) is not None
        if has_digits:
            self._ids.find(text, lower, hits)
            self._health.find_identifiers(text, lower, hits)
            self._people.find_addresses(text, lower, hits)
        self._contact.find(text, lower, hits, has_digits=has_digits)
        self._secrets.find(text, lower, hits)
        phrases = self._phrases.find(text, lower)
        public = [
            (p.start, p.end) for p in phrases if p.label == "public" and text[p.start].isupper()
        ]
        if has_digits:
            self._health.find_dates_of_birth(text, lower, hits, public=bool(public))
        medical = self._health.medical_spans(
            text, lower, [p for p in phrases if p.label == "medical"]
        )
        # Names found only through a first-name list count when the text is evidently
        # about someone's personal data: another entity or a medical term is present.
        people: list[Hit] = []
        self._people.find_names(text, lower, public, bool(hits or medical), people)
        hits.extend(people)
        for s, e in medical:
            if any(p.start - _MEDICAL_WINDOW < e and s < p.end + _MEDICAL_WINDOW for p in people):
                hits.append(Hit("MEDICAL_CONDITION", s, e, 0.8))
        resolved = resolve_overlaps(hits)
        topics = topics_of({h.type for h in resolved}, phrases, bool(medical))
        return resolved, topics
