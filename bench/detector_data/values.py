"""Random values for each entity type, valid by construction (check digits computed here).

Faker supplies names, streets and cities; everything with a check digit is computed by
this module's own code, independently of the detector's validators.
"""

from __future__ import annotations

import base64
import random
import string
from collections.abc import Callable
from typing import Any

__all__ = ["ValueFactory"]

_IBAN = {  # country: (length, BBAN alphabet: "n" digits only, "a" mixed)
    "DE": (22, "n"), "GB": (22, "a"), "FR": (27, "n"), "NL": (18, "a"), "ES": (24, "n"),
    "IT": (27, "a"), "BE": (16, "n"), "AT": (20, "n"), "CH": (21, "n"), "PL": (28, "n"),
    "IE": (22, "a"), "PT": (25, "n"), "SE": (24, "n"), "DK": (18, "n"), "NO": (15, "n"),
}  # fmt: skip


def _luhn_digit(body: str) -> str:
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            d = d - 9 if d > 9 else d
        total += d
    return str((10 - total % 10) % 10)


def _mod97_check(bban: str, country: str) -> str:
    s = "".join(str(int(c, 36)) for c in bban + country + "00")
    return f"{98 - int(s) % 97:02d}"


class ValueFactory:
    """Makes one value per call; ``locales`` picks which Faker locales supply names."""

    def __init__(self, rnd: random.Random, faker: Any, locales: list[str]) -> None:
        self.r = rnd
        self.f = faker
        self.locales = locales

    def _loc(self) -> Any:
        return self.f[self.r.choice(self.locales)]

    def digits(self, n: int) -> str:
        return "".join(self.r.choice(string.digits) for _ in range(n))

    # ---- people and places
    def person(self) -> str:
        g = self._loc()
        first, last = g.first_name(), g.last_name()
        if self.r.random() < 0.15:
            return f"{first} {self.r.choice(string.ascii_uppercase)}. {last}"
        return f"{first} {last}"

    def first_name(self) -> str:
        return str(self._loc().first_name())

    def last_name(self) -> str:
        return str(self._loc().last_name())

    def city(self) -> str:
        return str(self.f["en_US"].city())

    def street_address(self) -> str:
        kind = self.r.random()
        if kind < 0.55:
            us = self.f["en_US"]
            base = f"{us.building_number()} {us.street_name()}"
            if self.r.random() < 0.3:
                base += f", {us.secondary_address()}"
            if self.r.random() < 0.6:
                base += f", {us.city()}, {us.state_abbr()} {us.zipcode()}"
            return base
        if kind < 0.8:
            gb = self.f["en_GB"]
            return f"{self.r.randint(1, 220)} {gb.street_name()}, {gb.city()} {gb.postcode()}"
        de = self.f["de_DE"]
        return f"{de.street_name()} {self.r.randint(1, 150)}"

    # ---- identifiers
    def ssn(self) -> str:
        while True:
            area = self.r.randint(1, 899)
            if area != 666:
                break
        n = f"{area:03d}{self.r.randint(1, 99):02d}{self.r.randint(1, 9999):04d}"
        sep = self.r.choice(["-", "-", "-", " ", ""])
        return f"{n[:3]}{sep}{n[3:5]}{sep}{n[5:]}"

    def itin(self) -> str:
        group = self.r.choice([*range(50, 66), *range(70, 89), 90, 91, 92, *range(94, 100)])
        return f"9{self.digits(2)}-{group}-{self.digits(4)}"

    def credit_card(self) -> str:
        kind = self.r.choice(["visa", "mc", "mc2", "amex", "disc"])
        prefix, length = {
            "visa": ("4", 16),
            "mc": (str(self.r.randint(51, 55)), 16),
            "mc2": (str(self.r.randint(2221, 2720)), 16),
            "amex": (self.r.choice(["34", "37"]), 15),
            "disc": ("6011", 16),
        }[kind]
        body = prefix + self.digits(length - len(prefix) - 1)
        n = body + _luhn_digit(body)
        sep = self.r.choice([" ", "-", ""])
        if length == 15:
            return sep.join([n[:4], n[4:10], n[10:]])
        return sep.join(n[i : i + 4] for i in range(0, 16, 4))

    def bad_card(self) -> str:
        """16 digits that fail Luhn (a hard negative)."""
        body = "4" + self.digits(14)
        good = _luhn_digit(body)
        bad = str((int(good) + self.r.randint(1, 9)) % 10)
        n = body + bad
        return " ".join(n[i : i + 4] for i in range(0, 16, 4))

    def iban(self, valid: bool = True) -> str:
        country = self.r.choice(sorted(_IBAN))
        length, alpha = _IBAN[country]
        n = length - 4
        if alpha == "a":
            bban = "".join(self.r.choice(string.ascii_uppercase) for _ in range(4)) + self.digits(
                n - 4
            )
        else:
            bban = self.digits(n)
        check = _mod97_check(bban, country)
        if not valid:
            check = f"{(int(check) + self.r.randint(1, 90)) % 97 + 2:02d}"[:2]
        s = country + check + bban
        if self.r.random() < 0.6:
            return " ".join(s[i : i + 4] for i in range(0, len(s), 4))
        return s

    def nhs(self, valid: bool = True) -> str:
        while True:
            body = self.digits(9)
            total = sum(int(d) * w for d, w in zip(body, range(10, 1, -1), strict=True))
            check = (11 - total % 11) % 11
            if check != 10:
                break
        last = check if valid else (check + self.r.randint(1, 9)) % 10
        n = body + str(last)
        sep = self.r.choice([" ", " ", "-", ""])
        return f"{n[:3]}{sep}{n[3:6]}{sep}{n[6:]}"

    def nino(self) -> str:
        first = self.r.choice("ABCEGHJKLMNOPRSTWXYZ")
        second = self.r.choice("ABCEGHJKLMNPRSTWXYZ")
        if first + second in {"BG", "GB", "NK", "KN", "TN", "NT", "ZZ"}:
            first, second = "A", "B"
        d = self.digits(6)
        suffix = self.r.choice("ABCD")
        if self.r.random() < 0.5:
            return f"{first}{second} {d[:2]} {d[2:4]} {d[4:]} {suffix}"
        return f"{first}{second}{d}{suffix}"

    def passport(self) -> str:
        if self.r.random() < 0.5:
            return self.r.choice(string.ascii_uppercase) + self.digits(8)
        return str(self.r.randint(1, 9)) + self.digits(8)

    def bank_account(self) -> str:
        return str(self.r.randint(1, 9)) + self.digits(self.r.randint(7, 13))

    def aba(self) -> str:
        prefix = self.r.choice([*range(1, 13), *range(21, 33), *range(61, 73), 80])
        body = f"{prefix:02d}" + self.digits(6)
        w = (3, 7, 1, 3, 7, 1, 3, 7)
        total = sum(int(d) * x for d, x in zip(body, w, strict=True))
        return body + str((10 - total % 10) % 10)

    def vat(self) -> str:
        c = self.r.choice(["DE", "FR", "IT", "NL", "PL", "PT", "AT", "BE", "DK", "SE", "CZ"])
        return c + self._vat_body(c)

    def _vat_body(self, c: str) -> str:
        gen: dict[str, Callable[[], str]] = {
            "DE": self._vat_de,
            "FR": self._vat_fr,
            "IT": self._vat_it,
            "NL": self._vat_nl,
            "PL": lambda: self._weighted("PL", (6, 5, 7, 2, 3, 4, 5, 6, 7), 9, 11),
            "PT": self._vat_pt,
            "AT": self._vat_at,
            "BE": self._vat_be,
            "DK": self._vat_dk,
            "SE": self._vat_se,
            "CZ": lambda: self.digits(8),
        }
        return gen[c]()

    def _vat_de(self) -> str:
        body = str(self.r.randint(1, 9)) + self.digits(7)
        product = 10
        for ch in body:
            s = (int(ch) + product) % 10 or 10
            product = (2 * s) % 11
        return body + str((11 - product) % 10)

    def _vat_fr(self) -> str:
        siren8 = str(self.r.randint(1, 9)) + self.digits(7)
        siren = siren8 + _luhn_digit(siren8)
        key = int(siren + "12") % 97
        return f"{key:02d}{siren}"

    def _vat_it(self) -> str:
        body = str(self.r.randint(1, 9)) + self.digits(6) + f"{self.r.randint(1, 100):03d}"
        return body + _luhn_digit(body)

    def _vat_nl(self) -> str:
        while True:
            body = str(self.r.randint(1, 9)) + self.digits(7)
            s = sum(int(d) * w for d, w in zip(body, range(9, 1, -1), strict=True)) % 11
            if s < 10:
                return f"{body}{s}B01"

    def _weighted(self, _c: str, weights: tuple[int, ...], n: int, mod: int) -> str:
        while True:
            body = str(self.r.randint(1, 9)) + self.digits(n - 1)
            s = sum(int(d) * w for d, w in zip(body, weights, strict=True)) % mod
            if s < 10:
                return body + str(s)

    def _vat_pt(self) -> str:
        body = str(self.r.randint(1, 9)) + self.digits(7)
        s = sum((9 - i) * int(d) for i, d in enumerate(body))
        return body + str((11 - s) % 11 % 10)

    def _vat_at(self) -> str:
        body = self.digits(7)
        return "U" + body + self._at(body)

    def _at(self, body: str) -> str:
        # Luhn checksum of the 7 digits read right to left, doubling every second one.
        total = 0
        for i, ch in enumerate(reversed(body)):
            d = int(ch) * (2 if i % 2 else 1)
            total += d - 9 if d > 9 else d
        return str((6 - total % 10) % 10)

    def _vat_be(self) -> str:
        body = "0" + str(self.r.randint(2, 9)) + self.digits(6)
        return body + f"{97 - int(body) % 97:02d}"

    def _vat_dk(self) -> str:
        while True:
            body = str(self.r.randint(1, 9)) + self.digits(6)
            s = sum(int(d) * w for d, w in zip(body, (2, 7, 6, 5, 4, 3, 2), strict=True))
            check = (11 - s % 11) % 11
            if check < 10:
                return body + str(check)

    def _vat_se(self) -> str:
        body = self.digits(9)
        return body + _luhn_digit(body) + "01"

    # ---- network and contact
    def ipv4(self) -> str:
        first = self.r.choice([*range(11, 127), *range(128, 224)])
        return f"{first}.{self.r.randint(0, 255)}.{self.r.randint(0, 255)}.{self.r.randint(1, 254)}"

    def ipv6(self) -> str:
        groups = [f"{self.r.randint(0, 0xFFFF):x}" for _ in range(8)]
        groups[0] = "2001" if self.r.random() < 0.5 else "2a02"
        if self.r.random() < 0.5:
            return ":".join(groups[:3]) + "::" + groups[7]
        return ":".join(groups)

    def email(self) -> str:
        g = self._loc()
        return str(g.free_email() if self.r.random() < 0.6 else g.company_email())

    def phone(self) -> str:
        k = self.r.randint(0, 5)
        a, b = self.r.randint(201, 989), self.r.randint(201, 989)
        if k == 0:
            return f"({a}) {b}-{self.digits(4)}"
        if k == 1:
            return f"{a}-{b}-{self.digits(4)}"
        if k == 2:
            return f"+1 {a} {b} {self.digits(4)}"
        if k == 3:
            return f"+44 20 {self.digits(4)} {self.digits(4)}"
        if k == 4:
            return f"+49 30 {self.digits(8)}"
        return f"07{self.digits(3)} {self.digits(6)}"

    # ---- health
    def mrn(self) -> str:
        return self.r.choice(["", "MRN-", "H", "MR"]) + self.digits(self.r.randint(6, 9))

    def dob(self) -> str:
        y, m, d = self.r.randint(1930, 2015), self.r.randint(1, 12), self.r.randint(1, 28)
        months = ["January", "February", "March", "April", "May", "June", "July", "August",
                  "September", "October", "November", "December"]  # fmt: skip
        return self.r.choice(
            [f"{m:02d}/{d:02d}/{y}", f"{y}-{m:02d}-{d:02d}", f"{months[m - 1]} {d}, {y}",
             f"{d} {months[m - 1]} {y}", f"{d:02d}.{m:02d}.{y}"]
        )  # fmt: skip

    def insurance_id(self) -> str:
        if self.r.random() < 0.3:  # Medicare Beneficiary Identifier layout
            letters = "ACDEFGHJKMNPQRTUVWXY"
            c = self.r.choice
            return (
                f"{self.r.randint(1, 9)}{c(letters)}{c(letters)}{self.r.randint(0, 9)}"
                f"{c(letters)}{c(letters)}{self.r.randint(0, 9)}{c(letters)}{c(letters)}"
                f"{self.digits(2)}"
            )
        prefix = "".join(self.r.choice(string.ascii_uppercase) for _ in range(3))
        return prefix + self.digits(self.r.randint(6, 10))

    # ---- secrets
    def _rand(self, n: int, alphabet: str = string.ascii_letters + string.digits) -> str:
        return "".join(self.r.choice(alphabet) for _ in range(n))

    def api_key(self) -> str:
        k = self.r.randint(0, 7)
        up = string.ascii_uppercase + string.digits
        return [
            lambda: "AKIA" + self._rand(16, up),
            lambda: "ghp_" + self._rand(36),
            lambda: "sk-proj-" + self._rand(48),
            lambda: "sk-" + self._rand(48),
            lambda: "xoxb-" + self.digits(11) + "-" + self.digits(12) + "-" + self._rand(24),
            lambda: "sk_live_" + self._rand(24),
            lambda: "AIza" + self._rand(35),
            lambda: "eyJhbGciOiJIUzI1NiJ9.eyJ" + self._rand(30) + "." + self._rand(43),
        ][k]()

    def private_key(self) -> str:
        kind = self.r.choice(["RSA ", "EC ", "OPENSSH ", ""])
        lines = [
            base64.b64encode(bytes(self.r.randrange(256) for _ in range(48))).decode()
            for _ in range(self.r.randint(3, 8))
        ]
        body = "\n".join(lines)
        return f"-----BEGIN {kind}PRIVATE KEY-----\n{body}\n-----END {kind}PRIVATE KEY-----"

    def password(self) -> str:
        alphabet = string.ascii_letters + string.digits + "!#%&*@^"
        return self._rand(self.r.randint(8, 16), alphabet)
