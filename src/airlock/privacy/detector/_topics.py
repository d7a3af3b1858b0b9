"""Topic signals: which sensitive domains a text touches (a routing hint, not a verdict)."""

from __future__ import annotations

import re

from ._lexicon import Lexicon

__all__ = ["TopicRules"]

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


class TopicRules:
    def __init__(self, lexicon: Lexicon) -> None:
        parts = []
        for topic, words in sorted(lexicon.topic_words.items()):
            alt = "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))
            parts.append(f"(?P<{topic}>{alt})")
        self._words = re.compile(r"(?i:\b(?:" + "|".join(parts) + r")\b)")

    def topics(self, text: str, types: set[str], medical: bool) -> frozenset[str]:
        found = {_TYPE_TOPICS[t] for t in types if t in _TYPE_TOPICS}
        if medical:
            found.add("health")
        for m in self._words.finditer(text):
            if m.lastgroup is not None:
                found.add(m.lastgroup)
        return frozenset(found)
