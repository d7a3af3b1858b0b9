"""Contact details and network addresses: e-mail, phone numbers, IP addresses."""

from __future__ import annotations

import ipaddress
import re

from ._hits import Hit, near

__all__ = ["ContactRules"]


class ContactRules:
    """EMAIL_ADDRESS, PHONE_NUMBER and IP_ADDRESS."""

    def __init__(self) -> None:
        # Reserved for documentation and tests (RFC 2606/6761): placeholders, not anyone's.
        self._example_domain = re.compile(
            r"(?:^|\.)(?:example\.(?:com|org|net)|[a-z0-9-]+\.(?:test|invalid|example|localhost))$"
        )
        self._email = re.compile(
            r"(?<![\w.+\-])[\w.%+\-]{1,64}@((?:[A-Za-z0-9\-]{1,63}\.)+[A-Za-z]{2,24})(?![\w\-]|\.\w)"
        )
        self._intl = re.compile(
            r"(?<![\w+])\+[1-9][0-9]{0,2}(?:[ .\-]?\(?[0-9]{1,5}\)?){1,6}(?![\w])"
        )
        self._nanp = re.compile(
            r"(?<![\w\-.])(?:1[ \-.])?(?:\(([2-9][0-9]{2})\) ?|([2-9][0-9]{2})([\-.]))"
            r"[2-9][0-9]{2}[\-.][0-9]{4}(?![\w]|[\-.][0-9])"
        )
        # UK, French and other national numbers with a leading trunk 0 and grouping.
        self._national = re.compile(
            r"(?<![\w\-.+])0[1-9][0-9]{0,3}(?:[ .\-][0-9]{2,4}){2,4}(?![\w]|[\-.][0-9])"
            r"|(?<![\w\-.+])07[0-9]{3} ?[0-9]{6}(?![\w])"
        )
        self._ctx_number = re.compile(r"(?<![\w])\(?[0-9][0-9 ().\-]{5,18}[0-9](?![\w])")
        self._phone_ctx = re.compile(
            r"\b(?:phone|tel|telephone|mobile|cell|call|ring|fax|whatsapp|text me|sms|contact)"
        )
        self._ipv4 = re.compile(
            r"(?<![\w.])(?:(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])\.){3}"
            r"(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])(?![\w]|\.[0-9])"
        )
        self._version_ctx = re.compile(r"(?:\bv|version|release|build|ver\.?)\s*$")
        self._ipv6 = re.compile(r"(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])")

    def find(self, text: str, lower: str, out: list[Hit]) -> None:
        for m in self._email.finditer(text):
            if self._example_domain.search(m.group(1).lower()):
                continue
            # "git@github.com:org/repo.git" is an SSH remote, not a mailbox.
            if text.startswith(":", m.end()) and m.group().startswith("git@"):
                continue
            out.append(Hit("EMAIL_ADDRESS", m.start(), m.end(), 0.95))
        self._find_phones(text, lower, out)
        self._find_ips(text, lower, out)

    def _find_phones(self, text: str, lower: str, out: list[Hit]) -> None:
        for m in self._intl.finditer(text):
            raw = m.group().rstrip(" .-(")
            n = sum(c.isdigit() for c in raw)
            if 8 <= n <= 15:
                out.append(Hit("PHONE_NUMBER", m.start(), m.start() + len(raw), 0.85))
        for m in self._nanp.finditer(text):
            out.append(Hit("PHONE_NUMBER", m.start(), m.end(), 0.8))
        for m in self._national.finditer(text):
            n = sum(c.isdigit() for c in m.group())
            if 10 <= n <= 11:
                out.append(Hit("PHONE_NUMBER", m.start(), m.end(), 0.75))
        for m in self._ctx_number.finditer(text):
            raw = m.group()
            n = sum(c.isdigit() for c in raw)
            if 7 <= n <= 15 and near(self._phone_ctx, lower, m.start(), m.end(), 30):
                out.append(Hit("PHONE_NUMBER", m.start(), m.end(), 0.7))

    def _find_ips(self, text: str, lower: str, out: list[Hit]) -> None:
        for m in self._ipv4.finditer(text):
            s = m.start()
            if self._version_ctx.search(lower, max(0, s - 12), s):
                continue
            addr = ipaddress.IPv4Address(m.group())
            if addr.is_loopback or addr.is_unspecified or addr.is_multicast:
                continue
            if m.group().startswith("255.") or addr == ipaddress.IPv4Address("255.255.255.255"):
                continue  # netmasks
            out.append(Hit("IP_ADDRESS", s, m.end(), 0.9))
        if text.count(":") < 2:
            return
        for m in self._ipv6.finditer(text):
            raw = m.group()
            if raw.count(":") < 3 and "::" not in raw:
                continue
            try:
                addr6 = ipaddress.IPv6Address(raw)
            except ValueError:
                continue
            if addr6.is_loopback or addr6.is_unspecified or raw.count(":") < 2:
                continue
            out.append(Hit("IP_ADDRESS", m.start(), m.end(), 0.9))
