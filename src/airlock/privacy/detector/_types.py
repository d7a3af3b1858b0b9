"""The detector's output types: offsets and labels only, never the matched text."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

__all__ = ["ENTITY_TYPES", "TOPICS", "Entity", "Verdict"]

#: Every entity type the detector can report (Presidio-style names).
ENTITY_TYPES: frozenset[str] = frozenset(
    {
        "US_SSN",
        "US_ITIN",
        "CREDIT_CARD",
        "IBAN_CODE",
        "UK_NHS",
        "UK_NINO",
        "US_PASSPORT",
        "US_BANK_NUMBER",
        "ABA_ROUTING_NUMBER",
        "EU_VAT",
        "IP_ADDRESS",
        "EMAIL_ADDRESS",
        "PHONE_NUMBER",
        "MEDICAL_RECORD_NUMBER",
        "DATE_OF_BIRTH",
        "HEALTH_INSURANCE_ID",
        "MEDICAL_CONDITION",
        "PERSON",
        "STREET_ADDRESS",
        "API_KEY",
        "PRIVATE_KEY",
        "PASSWORD",
    }
)

#: Topic signals (a routing hint; a topic alone does not make a text sensitive).
TOPICS: frozenset[str] = frozenset({"health", "finance", "legal", "credentials"})


@dataclass(frozen=True, slots=True)
class Entity:
    """One detected entity: where it is, not what it is.

    ``start``/``end`` are Python ``str`` indices (code points) into the text at
    ``text_index`` of the detected input, so ``text[start:end]`` is the value.
    """

    type: str
    start: int
    end: int
    score: float
    text_index: int = 0


@dataclass(frozen=True, slots=True)
class Verdict:
    """The detector's judgement of one request (one or more texts)."""

    sensitive: bool
    entities: tuple[Entity, ...] = ()
    topics: frozenset[str] = field(default_factory=frozenset)

    def counts(self) -> dict[str, int]:
        """Entity type -> number of entities of that type (safe to log or audit)."""
        return dict(sorted(Counter(e.type for e in self.entities).items()))

    def types(self) -> frozenset[str]:
        """The distinct entity types found."""
        return frozenset(e.type for e in self.entities)
