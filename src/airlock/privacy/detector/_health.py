"""Health data: record and insurance numbers, dates of birth, medical terms."""

from __future__ import annotations

import re

from ._hits import Hit, standalone
from ._phrases import PhraseHit

__all__ = ["HealthRules"]

_MONTHS = (
    r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?"
    r"|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)"
)
_MRN_WORDS = ("mrn", "record", "patient", "chart", "hospital")
_INSURANCE_WORDS = ("member", "subscriber", "insur", "policy", "medicare", "medicaid", "plan",
                    "beneficiary", "group", "ehic")  # fmt: skip
_DOB_WORDS = ("dob", "d.o.b", "birth", "born")
# Words after a trigger phrase that show it is not a medical term ("started on Monday").
_NOT_MEDICAL = frozenset(
    {"monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday", "the",
     "this", "that", "it", "him", "her", "them", "me", "you", "a", "an", "my", "his",
     "their", "our", "your", "time", "work", "school", "us", "training", "payroll"}
)  # fmt: skip


class HealthRules:
    """MEDICAL_RECORD_NUMBER, HEALTH_INSURANCE_ID, DATE_OF_BIRTH and medical-term spans.

    Patterns run on the lower-cased text (same offsets as the original).
    """

    def __init__(self) -> None:
        ident = r"([a-z]{0,4}-?[0-9][0-9a-z\-]{3,18}[0-9a-z])"
        self._mrn = re.compile(
            r"(?:mrn|medical record(?: number| no\.?| #)?|patient (?:id|number|no\.?|#)"
            r"|chart (?:number|no\.?|#)|hospital (?:number|no\.?)|record (?:number|no\.?))"
            r"\s*(?:is\s+|was\s+)?[:#]?\s*" + ident
        )
        self._insurance = re.compile(
            r"(?:member|subscriber|insurance|policy|medicare|medicaid|health plan|plan"
            r"|beneficiary|insured|group|ehic|insurance card)\s*(?:id|number|no\.?|#|identifier"
            r"|card number)\s*(?:is\s+)?[:#]?\s*" + ident
        )
        # Medicare Beneficiary Identifier: 11 characters in a fixed letter/digit layout
        # (run on the original text: the letters are upper case).
        let = "[AC-HJKMNP-RT-Y]"
        self._mbi = re.compile(
            rf"[1-9]{let}[0-9AC-HJKMNP-RT-Y][0-9]-?{let}[0-9AC-HJKMNP-RT-Y][0-9]-?{let}{{2}}[0-9]{{2}}"
        )
        self._date = re.compile(
            r"[0-9]{1,2}[/.\-][0-9]{1,2}[/.\-](?:19|20)?[0-9]{2}"
            r"|(?:19|20)[0-9]{2}-[0-9]{2}-[0-9]{2}"
            r"|[0-9]{1,2}(?:st|nd|rd|th)?(?: of)? " + _MONTHS + r"\.?,? (?:19|20)[0-9]{2}"
            r"|" + _MONTHS + r"\.? [0-9]{1,2}(?:st|nd|rd|th)?,? (?:19|20)[0-9]{2}"
        )
        self._dob_ctx = re.compile(
            r"\b(?:dob|d\.o\.b\.?|date of birth|birth ?date|born(?: on)?|birthday)[^.\n]{0,12}$"
        )
        self._dose = re.compile(
            r"([a-z][a-z\-]{3,}) [0-9]+(?:\.[0-9]+)? ?(?:mg|mcg|µg|ml|units|iu)(?![a-z])"
        )
        # International non-proprietary name stems (WHO INN): -pril, -sartan, -olol, …
        stems = (
            r"pril|sartan|olol|statin|mab|nib|azole|cillin|mycin|cycline|floxacin|dipine|azepam"
            r"|zolam|oxetine|aline|triptyline|tidine|prazole|triptan|setron|afil|terol|sone"
            r"|olone|parin|gliflozin|gliptin|glutide|racetam|arone|lactone|trexate|vir|fenac"
            r"|profen|codone|morphone|pam|pine"
        )
        self._drug_verb = re.compile(
            r"(?:takes|taking|take|on|increase|decrease|reduce|start|stop|continue|prescribed)"
            rf"[ \t]+([a-z]+(?:{stems}))(?![a-z])"
        )
        # "diagnosed with <anything>": catches conditions the word list does not know.
        self._trigger = re.compile(
            r"(?:diagnosed with|diagnosis of|suffers from|suffering from|treated for"
            r"|prescribed|underwent|scheduled for|admitted for|tested positive for"
            r"|recovering from|undergoing)\s+"
            r"((?:a |an )?[^\W\d][\w'\-]*(?: [\w'\-]+){0,2}?)"
            r"(?=[.,;:!?)\n]|$| (?:and|but|for|on|at|in|since|after|last|which|who|to) )"
        )

    def _drugs(self, text: str, lower: str) -> list[tuple[int, int]]:
        """Drug names the word list lacks: "<word> 20 mg" or a pharmacological suffix."""
        spans = [(m.start(1), m.end(1)) for m in self._dose.finditer(lower)]
        for m in self._drug_verb.finditer(lower):
            if m.start() == 0 or not lower[m.start() - 1].isalnum():
                spans.append((m.start(1), m.end(1)))
        return spans

    def find_identifiers(self, text: str, lower: str, out: list[Hit]) -> None:
        if any(w in lower for w in _MRN_WORDS):
            for m in self._mrn.finditer(lower):
                if sum(c.isdigit() for c in m.group(1)) >= 4 and standalone(
                    text, m.start(1), m.end(1)
                ):
                    out.append(Hit("MEDICAL_RECORD_NUMBER", m.start(1), m.end(1), 0.95))
        if any(w in lower for w in _INSURANCE_WORDS):
            for m in self._insurance.finditer(lower):
                if sum(c.isdigit() for c in m.group(1)) >= 4 and standalone(
                    text, m.start(1), m.end(1)
                ):
                    out.append(Hit("HEALTH_INSURANCE_ID", m.start(1), m.end(1), 0.9))
        for m in self._mbi.finditer(text):
            if standalone(text, m.start(), m.end()):
                out.append(Hit("HEALTH_INSURANCE_ID", m.start(), m.end(), 0.95))

    def find_dates_of_birth(self, text: str, lower: str, out: list[Hit], public: bool) -> None:
        """Dates right after birth wording ("born on" next to a public figure is history)."""
        if not any(w in lower for w in _DOB_WORDS):
            return
        for m in self._date.finditer(lower):
            s = m.start()
            if not standalone(text, s, m.end()):
                continue
            ctx = self._dob_ctx.search(lower, max(0, s - 30), s)
            if ctx is None or (public and ctx.group().startswith("born")):
                continue
            out.append(Hit("DATE_OF_BIRTH", s, m.end(), 0.95))

    def medical_spans(self, text: str, lower: str, terms: list[PhraseHit]) -> list[tuple[int, int]]:
        """Diagnoses, medications and procedures (entities only next to a named person)."""
        spans = [(h.start, h.end) for h in terms]
        for s, e in self._drugs(text, lower):
            if not any(a < e and s < b for a, b in spans):
                spans.append((s, e))
        for m in self._trigger.finditer(lower):
            s, e = m.start(1), m.end(1)
            if s > 0 and lower[m.start() - 1].isalnum():
                continue
            first = lower[s:e].split(" ", 1)[0]
            if first in _NOT_MEDICAL and not lower.startswith(("a ", "an "), s):
                continue
            eponym = any(w in lower[s:e] for w in ("disease", "syndrome", "'s"))
            if text[s].isupper() and not eponym:
                continue  # "treated for Western Philosophy": a capitalised title, not a diagnosis
            if not any(a < e and s < b for a, b in spans):
                spans.append((s, e))
        return spans
