"""Topic signals: which sensitive domains a text touches (a routing hint, not a verdict)."""

from __future__ import annotations

from ._phrases import PhraseHit

__all__ = ["TOPIC_LABEL_PREFIX", "topics_of"]

#: Phrase labels "topic:<name>" mark topic words in the shared PhraseMatcher.
TOPIC_LABEL_PREFIX = "topic:"

# Entity types that imply a topic even when no topic word is present.
_TYPE_TOPICS: dict[str, str] = {
    "CREDIT_CARD": "finance",
    "IBAN_CODE": "finance",
    "US_BANK_NUMBER": "finance",
    "ABA_ROUTING_NUMBER": "finance",
    "EU_VAT": "finance",
    "US_ITIN": "finance",
    "UK_NHS": "health",
    "MEDICAL_RECORD_NUMBER": "health",
    "HEALTH_INSURANCE_ID": "health",
    "MEDICAL_CONDITION": "health",
    "API_KEY": "credentials",
    "PRIVATE_KEY": "credentials",
    "PASSWORD": "credentials",
}


def topics_of(types: set[str], phrases: list[PhraseHit], medical: bool) -> frozenset[str]:
    found = {_TYPE_TOPICS[t] for t in types if t in _TYPE_TOPICS}
    if medical:
        found.add("health")
    for p in phrases:
        if p.label.startswith(TOPIC_LABEL_PREFIX):
            found.add(p.label[len(TOPIC_LABEL_PREFIX) :])
    return frozenset(found)
