"""Government, bank and card identifiers: strict formats, check digits, context words."""

from __future__ import annotations

import re

from ._checksums import (
    aba_valid,
    iban_length,
    iban_valid,
    itin_valid,
    luhn_valid,
    nhs_valid,
    ssn_valid,
    vat_valid,
)
from ._hits import Hit, near, standalone

__all__ = ["IdentifierRules"]

# Card issuer prefixes (IIN ranges) of the networks in common use.
_CARD_PREFIX = (
    r"^(?:4|5[1-5]|2(?:22[1-9]|2[3-9]|[3-6]|7[01]|720)|3[47]|3(?:0[0-5]|[689])|6011|64[4-9]|65"
    r"|35(?:2[89]|[3-8])|62|81)"
)

# EU VAT body formats per country prefix (after the two-letter code).
_VAT_FORMATS: dict[str, str] = {
    "AT": r"U[0-9]{8}",
    "BE": r"[01]?[0-9]{9}",
    "BG": r"[0-9]{9,10}",
    "CY": r"[0-9]{8}[A-Z]",
    "CZ": r"[0-9]{8,10}",
    "DE": r"[0-9]{9}",
    "DK": r"[0-9]{8}",
    "EE": r"[0-9]{9}",
    "EL": r"[0-9]{9}",
    "ES": r"[0-9A-Z][0-9]{7}[0-9A-Z]",
    "FI": r"[0-9]{8}",
    "FR": r"[0-9A-HJ-NP-Z]{2}[0-9]{9}",
    "HR": r"[0-9]{11}",
    "HU": r"[0-9]{8}",
    "IE": r"[0-9][0-9A-Z+*][0-9]{5}[A-W][A-I]?",
    "IT": r"[0-9]{11}",
    "LT": r"[0-9]{9}|[0-9]{12}",
    "LU": r"[0-9]{8}",
    "LV": r"[0-9]{11}",
    "MT": r"[0-9]{8}",
    "NL": r"[0-9]{9}B[0-9]{2}",
    "PL": r"[0-9]{10}",
    "PT": r"[0-9]{9}",
    "RO": r"[0-9]{2,10}",
    "SE": r"[0-9]{12}",
    "SI": r"[0-9]{8}",
    "SK": r"[0-9]{10}",
    "XI": r"[0-9]{9}|[0-9]{12}",
}


# Two-letter prefixes HMRC never issues as a National Insurance number.
_NINO_NEVER = frozenset({"BG", "GB", "NK", "KN", "TN", "NT", "ZZ"})

# Any of these in the text means account or routing numbers may be present.
_BANK_WORDS = ("account", "acct", "a/c", "checking", "savings", "iban", "deposit", "routing",
               "aba", "rtn", "transit", "ach")  # fmt: skip


class IdentifierRules:
    """SSN, ITIN, card, IBAN, NHS, NINO, passport, bank account, routing number, EU VAT."""

    def __init__(self) -> None:
        # Patterns start with a character class so ``re`` can scan for it quickly; the
        # "nothing glued on either side" check is standalone(), in Python.
        self._ssn = re.compile(r"[0-9]{3}([- ]?)[0-9]{2}\1[0-9]{4}")
        self._ssn_ctx = re.compile(r"\b(?:ssn|social security|soc\.? ?sec|itin|taxpayer|tin\b)")
        self._card = re.compile(r"[0-9]{3,6}(?:[ \-][0-9]{3,7}){1,4}|[0-9]{13,19}")
        self._card_prefix = re.compile(_CARD_PREFIX)
        self._card_ctx = re.compile(
            r"\b(?:card|visa|mastercard|amex|american express|discover|cc|credit|debit|cvv|exp)"
        )
        self._card_not = re.compile(
            r"\b(?:order|invoice|tracking|ref(?:erence)?|confirmation|serial|isbn|sku|part"
            r"|ticket|case|id|imei|account|acct|iban)\b[^0-9]{0,12}$"
        )
        # Anchored on the two check digits, then looking back at the country code.
        self._iban = re.compile(r"[0-9]{2}(?<=[A-Za-z]{2}[0-9]{2})(?: ?[A-Za-z0-9]){11,31}")
        self._iban_groups = re.compile(
            r"[A-Za-z]{2}[0-9]{2}(?: [A-Za-z0-9]{4})*(?: [A-Za-z0-9]{1,3})?"
        )
        self._nhs = re.compile(r"[0-9]{3}([ \-]?)[0-9]{3}\1[0-9]{4}")
        self._nhs_ctx = re.compile(r"\b(?:nhs|national health|chi number|health service)")
        self._phone_ctx = re.compile(r"\b(?:phone|tel|mobile|cell|call|fax|whatsapp|text)")
        self._nino = re.compile(
            r"[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z]( ?)[0-9]{2}\1[0-9]{2}\1[0-9]{2}\1[A-D]"
        )
        self._passport = re.compile(r"[A-Z][0-9]{8}|[0-9]{9}")
        self._passport_ctx = re.compile(r"\bpassport")
        self._digits = re.compile(r"[0-9](?:[0-9]|-(?=[0-9])){6,19}")
        self._bank_ctx = re.compile(
            r"\b(?:account|acct|a/c|checking|savings|bank acc|deposit to|iban)\b"
        )
        self._aba_ctx = re.compile(r"\b(?:routing|aba|rtn|transit|ach)\b")
        self._vat = re.compile(r"([A-Z]{2})[ \-]?([0-9A-Z+*]{2,12})")
        self._vat_body = {c: re.compile(f) for c, f in _VAT_FORMATS.items()}
        self._vat_ctx = re.compile(
            r"\b(?:vat|tva|iva|btw|ust|mwst|moms|alv|nip|dic|pvn|afm|tax (?:id|number))"
        )

    def find(self, text: str, lower: str, out: list[Hit]) -> None:
        self._find_ssn(text, lower, out)
        self._find_cards(text, lower, out)
        self._find_iban(text, out)
        self._find_nhs(text, lower, out)
        for m in self._nino.finditer(text):
            if text[m.start() : m.start() + 2] not in _NINO_NEVER and standalone(
                text, m.start(), m.end()
            ):
                out.append(Hit("UK_NINO", m.start(), m.end(), 0.9))
        self._find_context_numbers(text, lower, out)
        self._find_vat(text, lower, out)

    def _find_ssn(self, text: str, lower: str, out: list[Hit]) -> None:
        for m in self._ssn.finditer(text):
            s, e = m.start(), m.end()
            if not standalone(text, s, e):
                continue
            digits = m.group().replace("-", "").replace(" ", "")
            ctx = near(self._ssn_ctx, lower, s, e, 50, 40)
            if not m.group(1) and not ctx:
                continue  # a bare 9-digit number is an SSN only when the text says so
            if itin_valid(digits):
                out.append(Hit("US_ITIN", s, e, 1.0 if ctx else 0.85))
            elif ssn_valid(digits):
                # "123 45 6789" is weaker evidence than "123-45-6789".
                base = 0.85 if m.group(1) == "-" else 0.65
                out.append(Hit("US_SSN", s, e, 1.0 if ctx else base))

    def _find_cards(self, text: str, lower: str, out: list[Hit]) -> None:
        for m in self._card.finditer(text):
            raw = m.group()
            s = m.start()
            if not standalone(text, s, m.end()):
                continue
            seps = {c for c in raw if not c.isdigit()}
            if len(seps) > 1:
                continue
            # Try the whole run, then without trailing groups ("4111 … 1111 123" + a CVV).
            groups = raw.split(seps.pop()) if seps else [raw]
            for k in range(len(groups), 0, -1):
                digits = "".join(groups[:k])
                if len(digits) < 13:
                    break
                if self._is_card(digits):
                    e = s + sum(len(g) for g in groups[:k]) + (k - 1)
                    ctx = near(self._card_ctx, lower, s, e, 40)
                    if ctx or not self._card_not.search(lower, max(0, s - 30), s):
                        # (skipped: "order 4111…" that merely passes Luhn)
                        out.append(Hit("CREDIT_CARD", s, e, 1.0 if ctx else 0.9))
                    break

    def _is_card(self, digits: str) -> bool:
        return (
            len(digits) <= 19
            and self._card_prefix.match(digits) is not None
            and len(set(digits)) >= 2
            and luhn_valid(digits)
        )

    def _find_iban(self, text: str, out: list[Hit]) -> None:
        for m in self._iban.finditer(text):
            start = m.start() - 2
            if start > 0 and (text[start - 1].isalnum() or text[start - 1] == "_"):
                continue
            raw = text[start : m.end()]
            want = iban_length(raw[:2])
            if want is None:
                continue
            # The match may run into a following word ("... 32 AND"): cut at the
            # country's exact length, counting only non-space characters.
            count, cut = 0, len(raw)
            for i, ch in enumerate(raw):
                if ch != " ":
                    count += 1
                    if count == want:
                        cut = i + 1
                        break
            if count < want:
                continue
            if " " in raw[:cut] and self._iban_groups.fullmatch(raw[:cut]) is None:
                continue  # spaces only between groups of four, as IBANs are printed
            if iban_valid(raw[:cut].replace(" ", "")):
                out.append(Hit("IBAN_CODE", start, start + cut, 1.0))

    def _find_nhs(self, text: str, lower: str, out: list[Hit]) -> None:
        for m in self._nhs.finditer(text):
            if not standalone(text, m.start(), m.end()):
                continue
            if not nhs_valid(m.group().replace(" ", "").replace("-", "")):
                continue
            s, e = m.start(), m.end()
            if near(self._nhs_ctx, lower, s, e, 60):
                out.append(Hit("UK_NHS", s, e, 1.0))
            elif m.group(1) != "-" and not near(self._phone_ctx, lower, s, e, 30):
                # The NHS's own "943 476 5919" layout, no phone wording around it.
                out.append(Hit("UK_NHS", s, e, 0.6))

    def _find_context_numbers(self, text: str, lower: str, out: list[Hit]) -> None:
        """Numbers that are identifiers only because of the words around them."""
        if "passport" in lower:
            for m in self._passport.finditer(text):
                s, e = m.start(), m.end()
                if standalone(text, s, e) and near(self._passport_ctx, lower, s, e, 50):
                    out.append(Hit("US_PASSPORT", s, e, 0.95))
        if not any(w in lower for w in _BANK_WORDS):
            return
        for m in self._digits.finditer(text):
            s, e = m.start(), m.end()
            if not standalone(text, s, e):
                continue
            digits = m.group().replace("-", "")
            if len(digits) == 9 and aba_valid(digits) and near(self._aba_ctx, lower, s, e, 40):
                out.append(Hit("ABA_ROUTING_NUMBER", s, e, 1.0))
            elif (
                8 <= len(digits) <= 17
                and near(self._bank_ctx, lower, s, e, 40)
                and not near(self._aba_ctx, lower, s, e, 25)
            ):
                out.append(Hit("US_BANK_NUMBER", s, e, 0.92))

    def _find_vat(self, text: str, lower: str, out: list[Hit]) -> None:
        pos = 0
        while (m := self._vat.search(text, pos)) is not None:
            # On a miss, retry one character on: "VAT DE136695976" first matches "AT DE…".
            pos = m.start() + 1
            country, body = m.group(1), m.group(2)
            fmt = self._vat_body.get(country)
            if fmt is None or fmt.fullmatch(body) is None:
                continue
            if not standalone(text, m.start(), m.end()):
                continue
            if country == "BE" and len(body) == 9:
                body = "0" + body  # old 9-digit Belgian numbers
            valid = vat_valid(country, body)
            if valid is False:
                continue
            s, e = m.start(), m.end()
            if valid:
                out.append(Hit("EU_VAT", s, e, 0.95))
            elif near(self._vat_ctx, lower, s, e, 40):
                out.append(Hit("EU_VAT", s, e, 0.8))
            pos = e
