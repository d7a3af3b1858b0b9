"""Secrets: provider API keys and tokens, private key blocks, passwords written in text."""

from __future__ import annotations

import re

from ._hits import Hit
from ._lexicon import Lexicon

__all__ = ["SecretRules"]

# Vendor token formats (prefixes documented by each vendor).
_VENDOR_TOKENS = (
    r"(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[A-Z0-9]{16}",  # AWS access key id
    r"gh[pousr]_[A-Za-z0-9]{36,251}",  # GitHub
    r"github_pat_[A-Za-z0-9_]{50,255}",
    # OpenAI and Anthropic
    r"sk-(?:proj-|svcacct-|admin-|ant-(?:api|admin)[0-9]{2}-)?[A-Za-z0-9_\-]{20,}",
    r"xox[abposre]-[A-Za-z0-9\-]{10,}",  # Slack
    r"https://hooks\.slack\.com/services/[A-Za-z0-9/_\-]{20,}",
    r"(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{16,}",  # Stripe secret / restricted
    r"whsec_[A-Za-z0-9]{24,}",
    r"AIza[0-9A-Za-z_\-]{35}",  # Google API key
    r"eyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}",  # JWT
    r"glpat-[A-Za-z0-9_\-]{20,}",  # GitLab
    r"hf_[A-Za-z0-9]{30,}",  # Hugging Face
    r"npm_[A-Za-z0-9]{36}",
    r"SG\.[A-Za-z0-9_\-]{22}\.[A-Za-z0-9_\-]{43}",  # SendGrid
    r"xapp-[0-9]-[A-Za-z0-9\-]{20,}",
)
_SECRET_WORDS = ("key", "secret", "token", "bearer")
_PASSWORD_WORDS = ("pass", "pwd", "pin")


class SecretRules:
    """API_KEY, PRIVATE_KEY and PASSWORD."""

    def __init__(self, lexicon: Lexicon) -> None:
        self._placeholders = lexicon.password_placeholders
        self._vendor = re.compile("|".join(_VENDOR_TOKENS))
        # Run on the lower-cased text (same offsets); values are read from the original.
        self._generic = re.compile(
            r"(?:(?:api[_\-]?key|apikey|secret(?:[_\-]?key)?|access[_\-]?token|auth[_\-]?token"
            r"|client[_\-]?secret|private[_\-]?token|x-api-key|aws_secret_access_key|token)"
            r"[\"']?\s*[:=]\s*[\"']?|bearer\s+)"
            r"([a-z0-9_\-./+=]{16,200})"
        )
        self._pem_begin = re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----")
        self._pem_end = re.compile(r"-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----")
        self._password = re.compile(
            r"(?:password|passwd|pwd|passcode|passphrase|pass phrase|pin(?: code| number)?)"
            r"(?:\s+(?:is|was|will be|to|=|:)|\s*[:=])\s*"
            r"([\"'`]?)([^\s\"'`]{4,64})"
        )
        self._code_value = re.compile(
            r"^(?:[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)+|[$%{<\[(].*|.*[)\]}>]"
            r"|.*\(.*|\*+|\.+)$"
        )

    def find(self, text: str, lower: str, out: list[Hit]) -> None:
        for m in self._vendor.finditer(text):
            s = m.start()
            if s > 0 and (text[s - 1].isalnum() or text[s - 1] in "_-"):
                continue
            if _looks_random(m.group()):
                out.append(Hit("API_KEY", s, m.end(), 1.0))
        if any(w in lower for w in _SECRET_WORDS):
            for m in self._generic.finditer(lower):
                value = text[m.start(1) : m.end(1)]
                if _looks_random(value):
                    out.append(Hit("API_KEY", m.start(1), m.end(1), 0.9))
        if "-----BEGIN" in text:
            for m in self._pem_begin.finditer(text):
                end = self._pem_end.search(text, m.end())
                # A truncated block (no END line) is still a leaked key: run to the text's end.
                out.append(Hit("PRIVATE_KEY", m.start(), end.end() if end else len(text), 1.0))
        if any(w in lower for w in _PASSWORD_WORDS):
            self._find_passwords(text, lower, out)

    def _find_passwords(self, text: str, lower: str, out: list[Hit]) -> None:
        for m in self._password.finditer(lower):
            if m.start() > 0 and lower[m.start() - 1].isalnum():
                continue  # "spin: …", "mypassword" as an identifier
            quote = m.group(1)
            start = m.start(2)
            value = text[start : m.end(2)]
            if not quote:
                value = value.rstrip(".,;:!?)")
            elif value.endswith(quote):
                value = value[:-1]
            if len(value) < 4 or value.lower() in self._placeholders:
                continue
            if self._code_value.match(value):
                continue  # password = form.password.data, getpass(), <secret>, ****
            stated = lower[m.start() : m.start(1)].rstrip()
            if stated.endswith(" to") and not _looks_random(value):
                continue  # "change your password to something stronger"
            plain_word = value.isalpha() and value.islower()
            if plain_word and stated.endswith((" is", " was", " be")) and not quote:
                # "the password is sunshine" is a password; "password is weak" is not
                # (common words are in the placeholder list); a plain word scores lower.
                out.append(Hit("PASSWORD", start, start + len(value), 0.7))
            else:
                out.append(Hit("PASSWORD", start, start + len(value), 0.9))


def _looks_random(token: str) -> bool:
    """A credential mixes character classes and does not repeat one character."""
    classes = (
        any(c.islower() for c in token)
        + any(c.isupper() for c in token)
        + any(c.isdigit() for c in token)
    )
    body = token.split("_")[-1] if "_" in token else token
    return classes >= 2 and len(set(body)) >= 6 and "xxxx" not in token.lower()
