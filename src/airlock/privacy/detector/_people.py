"""Personal names in context and street addresses."""

from __future__ import annotations

import re

from ._hits import Hit
from ._lexicon import Lexicon

__all__ = ["PeopleRules"]


_TITLES = r"(?:Mr|Mrs|Ms|Miss|Mx|Dr|Prof|Sir|Dame|Rev|Mme|Mlle|Herr|Frau|Sr|Sra|Srta)"

_STREET_SUFFIX = (
    r"(?:Street|St|Avenue|Ave|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Dr|Court|Ct|Place|Pl"
    r"|Terrace|Ter|Way|Parkway|Pkwy|Circle|Cir|Highway|Hwy|Square|Sq|Close|Crescent|Cres"
    r"|Gardens|Grove|Mews|Row|Trail|Trl|Loop|Alley|Walk|Plaza|Path|Pike|Run)"
)

_PUBLIC_ADDRESSES = ("10 downing street", "1600 pennsylvania avenue", "221b baker street")


class PeopleRules:
    """PERSON (titles, trigger phrases, known first names) and STREET_ADDRESS."""

    def __init__(self, lexicon: Lexicon) -> None:
        self._first_names = lexicon.first_names
        self._public_surnames = lexicon.public_surnames
        self._not_names = lexicon.not_names
        upper = "".join(c for c in map(chr, range(0x41, 0x250)) if c.isupper() and c.isalpha())
        lower = "".join(c for c in map(chr, range(0x61, 0x250)) if c.islower() and c.isalpha())
        up, lo = f"[{re.escape(upper)}]", f"[{re.escape(lower)}]"
        # One name word: "Smith", "O'Brien", "McDonald", "Smith-Jones", "José".
        tok = rf"{up}{lo}*(?:{up}{lo}+)?(?:[\-'’]{up}?{lo}+)?"
        name = rf"{tok}(?:[ \t]+(?:{up}\.[ \t]+)?{tok}){{0,2}}"
        self._token = re.compile(tok)
        self._title = re.compile(rf"\b{_TITLES}\.?[ \t]+({name})")
        self._trigger = re.compile(
            r"(?i:\b(?:patient|pt\.|client|customer|employee|applicant|tenant|claimant|resident"
            r"|my name is|name is|full name|name:|named|called|dear|sincerely,?|regards,?|signed,?"
            r"|attn:?|spouse|husband|wife|son|daughter|mother|father|colleague|manager|doctor"
            r"|nurse|caregiver|guardian|beneficiary|insured|member|user|contact)[ \t]*[:,]?[ \t]+)"
            rf"({name})"
        )
        self._self_intro = re.compile(rf"(?i:\b(?:i am|i'm|this is|it's)[ \t]+)({name})")
        self._bigram = re.compile(
            rf"(?<![\w\-])({tok})[ \t]+(?:{up}\.[ \t]+)?({tok})(?:[ \t]+({tok}))?"
        )
        public = sorted(lexicon.public_figures, key=len, reverse=True)
        self._public_re = re.compile(r"\b(?:" + "|".join(re.escape(p) for p in public) + r")\b")
        num = r"\b[0-9]{1,6}[A-Za-z]?(?:-[0-9]{1,4})?,?[ \t]+"
        direction = r"(?:(?:N|S|E|W|NE|NW|SE|SW|North|South|East|West)\.?[ \t]+)?"
        words = (
            r"(?!(?:The|A|An|In|On|Of|And|For|To|At)\b)"
            rf"(?:(?:{up}[\w'’.\-]*|[0-9]+(?:st|nd|rd|th))[ \t]+){{1,4}}?"
        )
        unit = (
            r"(?:,?[ \t]+(?:Apt|Apartment|Suite|Ste|Unit|Flat|Floor|Fl|Room|#)\.?"
            r"[ \t]*#?[0-9A-Za-z\-]+)?"
        )
        tail = (
            rf"(?:,[ \t]*{up}[\w.'’\-]*(?:[ \t]+{up}[\w.'’\-]*){{0,3}}"
            r"(?:,?[ \t]+(?:[A-Z]{2}[ \t]+[0-9]{5}(?:-[0-9]{4})?"
            r"|[A-Z]{1,2}[0-9][A-Z0-9]?[ \t]?[0-9][A-Z]{2}))?)?"
        )
        self._address = re.compile(
            num
            + direction
            + words
            + _STREET_SUFFIX
            + r"\b\.?"
            + unit
            + tail
            + rf"|\b{up}[\w]*(?:straße|strasse|str\.|weg|gasse|platz|allee|ring|damm)"
            r"[ \t]+[0-9]{1,4}[a-z]?\b"
            + rf"|\b[0-9]{{1,4}},?[ \t]+(?:rue|avenue|boulevard|bd|place|chemin|allée|impasse|quai)"
            rf"[ \t]+(?:(?:de|du|des|la|le|l'|d')[ \t]*)*{up}[\w'’\-]+(?:[ \t]+{up}[\w'’\-]+)?"
            + rf"|\b(?:Calle|Avenida|Via|Viale|Piazza|Corso|Rua)[ \t]+(?:[a-z]{{1,3}}[ \t]+)?"
            rf"{up}[\w'’\-]+(?:[ \t]+{up}[\w'’\-]+)?,?[ \t]+[0-9]{{1,4}}\b"
            + r"|\b(?:P\.?O\.?|Post Office)[ \t]+Box[ \t]+[0-9]{1,6}\b"
        )

    def public_spans(self, text: str) -> list[tuple[int, int]]:
        return [(m.start(), m.end()) for m in self._public_re.finditer(text)]

    def find_addresses(self, text: str, lower: str, out: list[Hit]) -> None:
        for m in self._address.finditer(text):
            if lower.startswith(_PUBLIC_ADDRESSES, m.start()):
                continue
            out.append(Hit("STREET_ADDRESS", m.start(), m.end(), 0.85))

    def find_names(
        self, text: str, public: list[tuple[int, int]], signal: bool, out: list[Hit]
    ) -> None:
        """Names with a title or a trigger phrase always; known first names only with ``signal``.

        ``signal`` says the text is about someone's personal data (another entity or a
        medical term is present), which is what separates "John Smith was diagnosed with
        diabetes" from a question about a historical figure.
        """
        found: list[Hit] = []
        for m in self._title.finditer(text):
            self._add(text, m.start(1), m.end(1), 0.9, public, found, require_known=False)
        for m in self._trigger.finditer(text):
            self._add(text, m.start(1), m.end(1), 0.85, public, found, require_known=False)
        for m in self._self_intro.finditer(text):
            self._add(text, m.start(1), m.end(1), 0.85, public, found, require_known=True)
        if signal:
            for m in self._bigram.finditer(text):
                if m.group(1) in self._first_names and m.group(2) not in self._not_names:
                    end = m.end(3) if m.group(3) and m.group(3) not in self._not_names else m.end(2)
                    self._add(text, m.start(1), end, 0.7, public, found, require_known=True)
        out.extend(found)

    def _add(
        self,
        text: str,
        start: int,
        end: int,
        score: float,
        public: list[tuple[int, int]],
        out: list[Hit],
        *,
        require_known: bool,
    ) -> None:
        # Trim trailing words that are not names ("John Smith Street", "Anna The").
        words = [
            (m.start() + start, m.end() + start) for m in self._token.finditer(text[start:end])
        ]
        while words and text[words[-1][0] : words[-1][1]] in self._not_names:
            words.pop()
        if not words or text[words[0][0] : words[0][1]] in self._not_names:
            return
        start, end = words[0][0], words[-1][1]
        if require_known and text[words[0][0] : words[0][1]] not in self._first_names:
            return
        if any(a <= start and end <= b for a, b in public):
            return  # inside "Abraham Lincoln": a public figure, not a data subject
        if len(words) == 1 and text[start:end] in self._public_surnames and public:
            return  # "Mr. Lincoln" in a text that names Abraham Lincoln
        out.append(Hit("PERSON", start, end, score))
