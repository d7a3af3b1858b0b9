"""Health data: record and insurance numbers, dates of birth, medical terms."""

from __future__ import annotations

import re

from ._hits import Hit
from ._lexicon import Lexicon

__all__ = ["HealthRules"]

_MONTHS = (
    r"(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?"
    r"|Sep(?:t(?:ember)?)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)"
)


def _alternation(terms: tuple[str, ...]) -> str:
    # Longest first so "type 2 diabetes" wins over "diabetes".
    return "|".join(re.escape(t) for t in sorted(set(terms), key=len, reverse=True))


class HealthRules:
    """MEDICAL_RECORD_NUMBER, HEALTH_INSURANCE_ID, DATE_OF_BIRTH and medical-term spans."""

    def __init__(self, lexicon: Lexicon) -> None:
        ident = r"([A-Z]{0,4}[\-]?[0-9][0-9A-Z\-]{3,18}[0-9A-Z])\b"
        self._mrn = re.compile(
            r"(?i:\b(?:mrn|medical record(?: number| no\.?| #)?|patient (?:id|number|no\.?|#)"
            r"|chart (?:number|no\.?|#)|hospital (?:number|no\.?)|record (?:number|no\.?))"
            r"\s*(?:is\s+|was\s+)?[:#]?\s*)" + ident
        )
        self._insurance = re.compile(
            r"(?i:\b(?:member|subscriber|insurance|policy|medicare|medicaid|health plan|plan"
            r"|beneficiary|insured|group|ehic|insurance card)\s*(?:id|number|no\.?|#|identifier"
            r"|card number)\s*(?:is\s+)?[:#]?\s*)" + ident
        )
        # Medicare Beneficiary Identifier: 11 characters in a fixed letter/digit layout.
        let = "[AC-HJKMNP-RT-Y]"
        self._mbi = re.compile(
            rf"\b[1-9]{let}[0-9AC-HJKMNP-RT-Y][0-9]-?{let}[0-9AC-HJKMNP-RT-Y][0-9]-?{let}{{2}}[0-9]{{2}}\b"
        )
        self._date = re.compile(
            r"\b(?:[0-9]{1,2}[/.\-][0-9]{1,2}[/.\-](?:19|20)?[0-9]{2}"
            r"|(?:19|20)[0-9]{2}-[0-9]{2}-[0-9]{2}"
            r"|[0-9]{1,2}(?:st|nd|rd|th)?(?: of)? " + _MONTHS + r"\.?,? (?:19|20)[0-9]{2}"
            r"|" + _MONTHS + r"\.? [0-9]{1,2}(?:st|nd|rd|th)?,? (?:19|20)[0-9]{2})\b"
        )
        self._dob_ctx = re.compile(
            r"\b(?:dob|d\.o\.b|date of birth|birth ?date|born(?: on)?|birthday|b\.)\b[^.\n]{0,12}$"
        )
        terms = lexicon.conditions + lexicon.medications + lexicon.procedures
        self._medical = re.compile(r"(?i:\b(?:" + _alternation(terms) + r")\b)")
        # "diagnosed with <anything>": catches conditions the word list does not know.
        self._trigger = re.compile(
            r"(?i:\b(?:diagnosed with|diagnosis of|suffers from|suffering from|treated for"
            r"|prescribed|started on|underwent|scheduled for|admitted for|tested positive for"
            r"|history of|recovering from|receiving|undergoing)\s+)"
            r"((?:a |an )?[\w'\-]+(?: [\w'\-]+){0,2}?)"
            r"(?=[.,;:!?)\n]|$| (?:and|but|for|on|at|in|since|after|last|which|who) )"
        )

    def find_identifiers(self, text: str, lower: str, out: list[Hit]) -> None:
        for m in self._mrn.finditer(text):
            if sum(c.isdigit() for c in m.group(1)) >= 4:
                out.append(Hit("MEDICAL_RECORD_NUMBER", m.start(1), m.end(1), 0.95))
        for m in self._insurance.finditer(text):
            if sum(c.isdigit() for c in m.group(1)) >= 4:
                out.append(Hit("HEALTH_INSURANCE_ID", m.start(1), m.end(1), 0.9))
        for m in self._mbi.finditer(text):
            out.append(Hit("HEALTH_INSURANCE_ID", m.start(), m.end(), 0.95))

    def find_dates_of_birth(self, text: str, lower: str, out: list[Hit], public: bool) -> None:
        """Dates right after birth wording ("born on" next to a public figure is history)."""
        for m in self._date.finditer(text):
            s = m.start()
            ctx = self._dob_ctx.search(lower, max(0, s - 30), s)
            if ctx is None:
                continue
            if public and ctx.group().startswith("born"):
                continue
            out.append(Hit("DATE_OF_BIRTH", s, m.end(), 0.95))

    def medical_spans(self, text: str) -> list[tuple[int, int]]:
        """Spans of diagnoses, medications and procedures (not yet entities: need a person)."""
        spans = [(m.start(), m.end()) for m in self._medical.finditer(text)]
        for m in self._trigger.finditer(text):
            s, e = m.start(1), m.end(1)
            if not any(a < e and s < b for a, b in spans):
                spans.append((s, e))
        return spans
