"""Personal names in context and street addresses."""

from __future__ import annotations

import re

from ._hits import Hit, standalone
from ._lexicon import Lexicon
from ._phrases import trie_pattern

__all__ = ["PeopleRules"]

_TITLES = r"(?:Mr|Mrs|Ms|Miss|Mx|Dr|Prof|Sir|Dame|Rev|Mme|Mlle|Herr|Frau|Sr|Sra|Srta)"
_PUBLIC_ADDRESSES = ("10 downing street", "1600 pennsylvania avenue", "221b baker street")
_GERMAN_STREETS = ("straße", "strasse", "str.", "weg", "gasse", "platz", "allee", "ring", "damm")
_OTHER_STREET_WORDS = ("rue", "avenue", "boulevard", "bd", "place", "chemin", "allée",
                       "impasse", "quai", "calle", "avenida", "via", "piazza", "corso", "rua",
                       "box")  # fmt: skip
# Triggers after which one capitalised word is too weak ("a dog named Max").
_NEEDS_FULL_NAME = ("named", "called", "call", "text", "email", "e-mail", "phone", "ask", "tell",
                    "contact", "notify", "remind", "message", "invite", "for")  # fmt: skip


class PeopleRules:
    """PERSON (titles, trigger phrases, known first names) and STREET_ADDRESS."""

    def __init__(self, lexicon: Lexicon) -> None:
        self._first_names = lexicon.first_names
        self._public_surnames = lexicon.public_surnames
        self._not_names = lexicon.not_names
        self._weak_suffixes = frozenset(lexicon.street_suffixes_weak)
        upper = "".join(c for c in map(chr, range(0x41, 0x250)) if c.isupper() and c.isalpha())
        lower = "".join(c for c in map(chr, range(0x61, 0x250)) if c.islower() and c.isalpha())
        up, lo = f"[{re.escape(upper)}]", f"[{re.escape(lower)}]"
        # One name word: "Smith", "O'Brien", "McDonald", "Anna-Marie", "José", "Łukasz".
        tok = rf"{up}{lo}+(?:{up}{lo}+)?(?:[\-'’]{up}{lo}+)?"
        # Surname particles: "Maysa da Rocha", "Luka van Breukeleveen", "Juan de la Cruz".
        particle = (
            r"(?:(?:da|de|di|do|dos|das|del|della|der|den|du|la|le|van|von|ter|ten|bin|al)[ \t]+)"
        )
        name = rf"{tok}(?:[ \t]+(?:{up}\.[ \t]+)?{particle}{{0,2}}{tok}){{0,2}}"
        self._token = re.compile(tok)
        self._name = re.compile(name)
        self._title = re.compile(rf"{_TITLES}\.?[ \t]+({name})")
        # Trigger words are found in the lower-cased text; the name after them in the original.
        self._trigger = re.compile(
            r"(?:patient|pt\.|client|customer|employee|applicant|tenant|claimant|resident"
            r"|my name is|name is|full name|name:|named|called|dear|sincerely,?|regards,?"
            r"|signed,?|attn:?|spouse|husband|wife|son|daughter|mother|father|caregiver"
            r"|guardian|beneficiary|insured|neighbou?r|friend|landlord|boss|coworker|roommate"
            r"|partner|fianc[ée]e?|girlfriend|boyfriend"
            # Verbs addressed to a person: need a full name ("Call Support" is no one).
            r"|call|text|email|e-mail|phone|ask|tell|contact|notify|remind|message|invite|for"
            r")(?:[ \t]+(?:is|was))?[ \t]*[:,]?\s+"
        )
        self._self_intro = re.compile(r"(?:i am|i'm|i’m|this is|it's)[ \t]+")
        self._bigram = re.compile(
            rf"({tok})[ \t]+(?:{up}\.[ \t]+)?{particle}{{0,2}}({tok})(?:[ \t]+({tok}))?"
        )
        suffixes = lexicon.street_suffixes_strong + lexicon.street_suffixes_weak
        words = (
            r"(?!(?:The|A|An|In|On|Of|And|For|To|At)\b)"
            rf"(?:(?:{up}[\w'’.\-]*|[0-9]+(?:st|nd|rd|th))[ \t]+){{1,4}}?"
        )
        unit = (
            r"(,?[ \t]+(?:Apt|Apartment|Suite|Ste|Unit|Flat|Floor|Fl|Room|#)\.?"
            r"[ \t]*#?[0-9A-Za-z\-]+)?"
        )
        tail = (
            rf"(,[ \t]*{up}[\w.'’\-]*(?:[ \t]+{up}[\w.'’\-]*){{0,3}}"
            r"(?:,?[ \t]+(?:[A-Z]{2}[ \t]+[0-9]{5}(?:-[0-9]{4})?"
            r"|[A-Z]{1,2}[0-9][A-Z0-9]?[ \t]?[0-9][A-Z]{2}))?)?"
        )
        self._address = re.compile(
            r"[0-9]{1,6}[A-Za-z]?(?:-[0-9]{1,4})?,?[ \t]+"
            r"(?:(?:N|S|E|W|NE|NW|SE|SW|North|South|East|West)\.?[ \t]+)?"
            + words
            + "("
            + trie_pattern(suffixes)
            + r")(?![\w])\.?"
            + unit
            + tail
        )
        self._address_ctx = re.compile(
            r"\b(?:at|to|lives?|living|address|located|ship|deliver|send|resides?|moved|visit)"
            r"\b[^.\n]{0,12}$"
        )
        self._german = re.compile(
            r"(?:" + "|".join(re.escape(s) for s in _GERMAN_STREETS) + r")[ \t]+[0-9]{1,4}[a-z]?"
        )
        self._other_address = re.compile(
            rf"[0-9]{{1,4}},?[ \t]+(?:rue|avenue|boulevard|bd|place|chemin|allée|impasse|quai)"
            rf"[ \t]+(?:(?:de|du|des|la|le|l'|d')[ \t]*)*{up}[\w'’\-]+(?:[ \t]+{up}[\w'’\-]+)?"
            rf"|(?:Calle|Avenida|Via|Viale|Piazza|Corso|Rua)[ \t]+(?:[a-z]{{1,3}}[ \t]+)?"
            rf"{up}[\w'’\-]+(?:[ \t]+{up}[\w'’\-]+)?,?[ \t]+[0-9]{{1,4}}"
            r"|(?:P\.?O\.?|Post Office)[ \t]+Box[ \t]+[0-9]{1,6}"
        )

    # ---- addresses

    def find_addresses(self, text: str, lower: str, out: list[Hit]) -> None:
        for m in self._address.finditer(text):
            s = m.start()
            if s > 0 and (text[s - 1].isalnum() or text[s - 1] in "_-."):
                continue
            if lower.startswith(_PUBLIC_ADDRESSES, s):
                continue
            weak = m.group(1) in self._weak_suffixes
            # "5 Great Lakes": a common-noun suffix needs an address-like context.
            if (
                weak
                and not (m.group(2) or m.group(3))
                and not self._address_ctx.search(lower, max(0, s - 30), s)
            ):
                continue
            out.append(Hit("STREET_ADDRESS", s, m.end(), 0.85))
        if any(w in lower for w in _GERMAN_STREETS):
            for m in self._german.finditer(lower):
                s = m.start()
                while s > 0 and (text[s - 1].isalnum() or text[s - 1] == "-"):
                    s -= 1
                if s < m.start() and text[s].isupper() and standalone(text, s, m.end()):
                    out.append(Hit("STREET_ADDRESS", s, m.end(), 0.85))
        if not any(w in lower for w in _OTHER_STREET_WORDS):
            return
        for m in self._other_address.finditer(text):
            if standalone(text, m.start(), m.end()):
                out.append(Hit("STREET_ADDRESS", m.start(), m.end(), 0.85))

    # ---- names

    def find_names(
        self, text: str, lower: str, public: list[tuple[int, int]], signal: bool, out: list[Hit]
    ) -> None:
        """Names with a title or a trigger phrase always; known first names only with ``signal``.

        ``signal`` says the text is about someone's personal data (another entity or a
        medical term is present), which is what separates "John Smith was diagnosed with
        diabetes" from a question about a historical figure.
        """
        found: list[Hit] = []
        for m in self._title.finditer(text):
            if m.start() == 0 or not text[m.start() - 1].isalnum():
                self._add(text, m.start(1), m.end(1), 0.9, public, found, known=False)
        for m in self._trigger.finditer(lower):
            if m.start() > 0 and lower[m.start() - 1].isalnum():
                continue
            n = self._name.match(text, m.end())
            if n is not None:
                trigger = m.group().split(None, 1)[0].rstrip(":,")
                full = trigger in _NEEDS_FULL_NAME
                # "for United States": after "for" only a known first name starts a name.
                known = trigger == "for"
                self._add(text, n.start(), n.end(), 0.85, public, found, known=known, full=full)
        for m in self._self_intro.finditer(lower):
            n = self._name.match(text, m.end())
            if n is not None and (m.start() == 0 or not lower[m.start() - 1].isalnum()):
                self._add(text, n.start(), n.end(), 0.85, public, found, known=True)
        if signal:
            self._find_listed_names(text, public, found)
        out.extend(found)

    def _find_listed_names(
        self, text: str, public: list[tuple[int, int]], found: list[Hit]
    ) -> None:
        """Capitalised word pairs whose first word is a known first name."""
        pos = 0
        while (m := self._bigram.search(text, pos)) is not None:
            if m.start() > 0 and (text[m.start() - 1].isalnum() or text[m.start() - 1] == "-"):
                pos = m.start(2)
                continue
            first = m.group(1)
            known = first in self._first_names or first.split("-")[0] in self._first_names
            if not known or m.group(2) in self._not_names:
                pos = m.start(2)  # "Text Nathan Bryan": retry from "Nathan"
                continue
            third = m.group(3)
            end = m.end(3) if third and third not in self._not_names else m.end(2)
            self._add(text, m.start(1), end, 0.7, public, found, known=True)
            pos = end

    def _add(
        self,
        text: str,
        start: int,
        end: int,
        score: float,
        public: list[tuple[int, int]],
        out: list[Hit],
        *,
        known: bool,
        full: bool = False,
    ) -> None:
        # Trim trailing words that are not names ("John Smith Street", "Anna The").
        words = [(m.start(), m.end()) for m in self._token.finditer(text, start, end)]
        while words and text[words[-1][0] : words[-1][1]] in self._not_names:
            words.pop()
        if not words or text[words[0][0] : words[0][1]] in self._not_names:
            return
        if full and len(words) < 2:
            return
        start, end = words[0][0], words[-1][1]
        first = text[words[0][0] : words[0][1]]
        if (
            known
            and first not in self._first_names
            and first.split("-")[0] not in self._first_names
        ):
            return
        if any(a <= start and end <= b for a, b in public):
            return  # inside "Abraham Lincoln": a public figure, not a data subject
        if len(words) == 1 and public and text[start:end] in self._public_surnames:
            return  # "Mr. Lincoln" in a text that names Abraham Lincoln
        out.append(Hit("PERSON", start, end, score))
