"""Contact details and network addresses: e-mail, phone numbers, IP addresses."""

from __future__ import annotations

import ipaddress
import re

from ._hits import Hit, near, standalone

__all__ = ["ContactRules"]

# Any of these in the text lets a plain digit group be read as a phone number.
_PHONE_WORDS = ("phone", "tel", "mobile", "cell", "call", "ring", "fax", "whatsapp", "sms",
                "text me", "contact", "reach")  # fmt: skip
_HEX = frozenset("0123456789abcdefABCDEF:")


class ContactRules:
    """EMAIL_ADDRESS, PHONE_NUMBER and IP_ADDRESS."""

    def __init__(self) -> None:
        # Reserved for documentation (RFC 5737, RFC 3849): examples, not anyone's address.
        self._doc_v4 = tuple(
            ipaddress.IPv4Network(n) for n in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24")
        )
        self._doc_v6 = ipaddress.IPv6Network("2001:db8::/32")
        # Reserved for documentation and tests (RFC 2606/6761): placeholders, not anyone's.
        self._example_domain = re.compile(
            r"(?:^|\.)(?:example\.(?:com|org|net)|[a-z0-9-]+\.(?:test|invalid|example|localhost))$"
        )
        # Anchored on "@", the local part is found by looking back from it.
        self._email = re.compile(
            r"(?<=[\w.%+\-])@((?:[^\W_](?:[\w\-]{0,61}[^\W_])?\.)+[^\W\d_]{2,24})(?![\w\-]|\.\w)"
        )
        self._local = re.compile(r"[\w.%+\-]{1,64}$")
        self._intl = re.compile(r"\+[1-9][0-9]{0,2}(?:[ .\-]?\(?[0-9]{1,5}\)?){1,6}")
        self._nanp = re.compile(
            r"(?:1[ \-.])?(?:\([2-9][0-9]{2}\) ?|[2-9][0-9]{2}[\-.])[2-9][0-9]{2}[\-.][0-9]{4}"
        )
        # UK, French and other national numbers with a leading trunk 0 and grouping.
        self._national = re.compile(
            r"0[1-9][0-9]{0,3}(?:[ .\-][0-9]{2,4}){2,4}|07[0-9]{3} ?[0-9]{6}"
        )
        self._ctx_number = re.compile(r"[(0-9][0-9 ().\-]{5,18}[0-9]")
        self._phone_ctx = re.compile(
            r"\b(?:phone|tel|telephone|mobile|cell|call|ring|fax|whatsapp|text me|sms|contact"
            r"|reach)"
        )
        self._ipv4 = re.compile(
            r"(?:(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])\.){3}"
            r"(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"
        )
        self._version_ctx = re.compile(r"\b(?:v|version|release|build|ver\.?)\s*$")

    def find(self, text: str, lower: str, out: list[Hit], *, has_digits: bool) -> None:
        if "@" in text:
            self._find_emails(text, out)
        if has_digits:
            self._find_phones(text, lower, out)
            if "." in text:
                self._find_ipv4(text, lower, out)
        if text.count(":") >= 2:
            self._find_ipv6(text, out)

    def _find_emails(self, text: str, out: list[Hit]) -> None:
        for m in self._email.finditer(text):
            local = self._local.search(text, max(0, m.start() - 64), m.start())
            if local is None or local.group().startswith("."):
                continue
            if self._example_domain.search(m.group(1).lower()):
                continue
            # "git@github.com:org/repo.git" is an SSH remote, not a mailbox.
            if text.startswith(":", m.end()) and local.group() == "git":
                continue
            out.append(Hit("EMAIL_ADDRESS", local.start(), m.end(), 0.95))

    def _find_phones(self, text: str, lower: str, out: list[Hit]) -> None:
        if "+" in text:
            for m in self._intl.finditer(text):
                raw = m.group().rstrip(" .-(")
                s, e = m.start(), m.start() + len(raw)
                n = sum(c.isdigit() for c in raw)
                if 8 <= n <= 15 and standalone(text, s, e):
                    out.append(Hit("PHONE_NUMBER", s, e, 0.85))
        for m in self._nanp.finditer(text):
            if standalone(text, m.start(), m.end()) and not text.startswith(".", m.start() - 1):
                out.append(Hit("PHONE_NUMBER", m.start(), m.end(), 0.8))
        for m in self._national.finditer(text):
            n = sum(c.isdigit() for c in m.group())
            if 10 <= n <= 11 and standalone(text, m.start(), m.end()):
                out.append(Hit("PHONE_NUMBER", m.start(), m.end(), 0.75))
        if any(w in lower for w in _PHONE_WORDS):
            for m in self._ctx_number.finditer(text):
                s, e = m.start(), m.end()
                if text[s] == "(" and ")" not in m.group():
                    s += 1
                n = sum(c.isdigit() for c in m.group())
                if (
                    7 <= n <= 15
                    and standalone(text, s, e)
                    and near(self._phone_ctx, lower, s, e, 30)
                ):
                    out.append(Hit("PHONE_NUMBER", s, e, 0.7))

    def _find_ipv4(self, text: str, lower: str, out: list[Hit]) -> None:
        for m in self._ipv4.finditer(text):
            s, e = m.start(), m.end()
            if not standalone(text, s, e) or text.startswith(".", s - 1):
                continue
            if e < len(text) - 1 and text[e] == "." and text[e + 1].isdigit():
                continue  # part of a longer dotted number
            if self._version_ctx.search(lower, max(0, s - 12), s):
                continue
            addr = ipaddress.IPv4Address(m.group())
            if addr.is_loopback or addr.is_unspecified or addr.is_multicast:
                continue
            if m.group().startswith("255.") or any(addr in n for n in self._doc_v4):
                continue  # netmasks, documentation examples
            out.append(Hit("IP_ADDRESS", s, e, 0.9))

    def _find_ipv6(self, text: str, out: list[Hit]) -> None:
        """Grow each colon into its maximal run of hex digits and colons, then parse it."""
        seen_end = -1
        pos = text.find(":")
        while pos != -1:
            if pos >= seen_end:
                s, e = pos, pos
                while s > 0 and text[s - 1] in _HEX:
                    s -= 1
                while e < len(text) and text[e] in _HEX:
                    e += 1
                seen_end = e
                self._ipv6_candidate(text, s, e, out)
            pos = text.find(":", pos + 1)

    def _ipv6_candidate(self, text: str, s: int, e: int, out: list[Hit]) -> None:
        raw = text[s:e]
        if raw.count(":") < 2 or (raw.count(":") < 3 and "::" not in raw) or len(raw) > 39:
            return
        if not standalone(text, s, e):
            return
        try:
            addr = ipaddress.IPv6Address(raw)
        except ValueError:
            return
        if addr.is_loopback or addr.is_unspecified or addr in self._doc_v6:
            return
        if raw.startswith("::") and raw.count(":") < 4:
            return  # "b[::2]", "::1"-like fragments of code
        out.append(Hit("IP_ADDRESS", s, e, 0.9))
