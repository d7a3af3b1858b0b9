"""Check-digit and structure rules for identifiers.

Every function takes the identifier with separators already removed and returns a
bool; none raises on malformed input (a malformed candidate is simply not valid).
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = [
    "aba_valid",
    "iban_length",
    "iban_valid",
    "itin_valid",
    "luhn_valid",
    "nhs_valid",
    "ssn_valid",
    "vat_valid",
]

_ALNUM36 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"

# ISO 13616 IBAN lengths per country (SWIFT registry), so a mod-97 pass on a wrong-length
# string is still rejected.
_IBAN_LENGTHS: dict[str, int] = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22,
    "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "DO": 28,
    "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23,
    "GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26,
    "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20,
    "LV": 21, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MR": 27, "MT": 31, "MU": 30, "NL": 18,
    "NO": 15, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "SA": 24,
    "SC": 31, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "ST": 25, "SV": 28, "TL": 23, "TN": 24,
    "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20,
}  # fmt: skip

# Known advertising/sample SSNs the SSA voided; they are not anyone's number.
_VOID_SSNS = frozenset({"078051120", "219099999", "123456789"})


def _digits(s: str) -> bool:
    return s.isascii() and s.isdigit()


def luhn_valid(number: str) -> bool:
    """Luhn (mod 10) check, as used by payment cards."""
    if not _digits(number) or len(number) < 2:
        return False
    total = 0
    for i, ch in enumerate(reversed(number)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def _mod97(s: str) -> int:
    """Letters as 10..35 (ISO 7064 MOD 97-10 transliteration), then the remainder mod 97."""
    rem = 0
    for ch in s:
        v = _ALNUM36.index(ch)
        rem = (rem * (100 if v > 9 else 10) + v) % 97
    return rem


def iban_length(country: str) -> int | None:
    """The IBAN length for a two-letter country code, None when it issues no IBAN."""
    return _IBAN_LENGTHS.get(country.upper())


def iban_valid(iban: str) -> bool:
    """ISO 13616: known country, exact length, alphanumeric BBAN, mod-97 == 1."""
    iban = iban.upper()
    if not iban.isascii() or not iban.isalnum() or len(iban) < 15:
        return False
    if _IBAN_LENGTHS.get(iban[:2]) != len(iban) or not _digits(iban[2:4]):
        return False
    return _mod97(iban[4:] + iban[:4]) == 1


def nhs_valid(number: str) -> bool:
    """NHS number: 10 digits, weights 10..2, mod-11 check digit (10 is never issued)."""
    if not _digits(number) or len(number) != 10:
        return False
    total = sum(int(d) * w for d, w in zip(number[:9], range(10, 1, -1), strict=True))
    check = 11 - total % 11
    if check == 11:
        check = 0
    return check != 10 and check == int(number[9])


def aba_valid(number: str) -> bool:
    """ABA routing transit number: 9 digits, 3-7-1 weights mod 10, valid Fed prefix."""
    if not _digits(number) or len(number) != 9:
        return False
    prefix = int(number[:2])
    if not (prefix <= 12 or 21 <= prefix <= 32 or 61 <= prefix <= 72 or prefix == 80):
        return False
    d = [int(c) for c in number]
    total = 3 * (d[0] + d[3] + d[6]) + 7 * (d[1] + d[4] + d[7]) + (d[2] + d[5] + d[8])
    return total % 10 == 0 and number != "000000000"


def ssn_valid(number: str) -> bool:
    """SSA rules: area not 000/666/9xx, group not 00, serial not 0000, not a voided sample."""
    if not _digits(number) or len(number) != 9 or number in _VOID_SSNS:
        return False
    area, group, serial = number[:3], number[3:5], number[5:]
    if area in ("000", "666") or area[0] == "9" or group == "00" or serial == "0000":
        return False
    # All-same-digit numbers (111-11-1111) are placeholders, not issued numbers.
    return len(set(number)) > 1


def itin_valid(number: str) -> bool:
    """IRS ITIN: 9xx-[50-65|70-88|90-92|94-99]-xxxx."""
    if not _digits(number) or len(number) != 9 or number[0] != "9":
        return False
    g = int(number[3:5])
    return 50 <= g <= 65 or 70 <= g <= 88 or 90 <= g <= 92 or 94 <= g <= 99


def _weighted(number: str, weights: tuple[int, ...]) -> int:
    return sum(w * int(n) for w, n in zip(weights, number, strict=False))


def _mod_11_10(number: str) -> bool:
    """ISO 7064 MOD 11,10 (German USt-IdNr.)."""
    check = 5
    for n in number:
        check = (((check or 10) * 2) % 11 + int(n)) % 10
    return check == 1


def _vat_at(b: str) -> bool:
    # Austrian UID: U + 7 digits + check = (6 - Luhn checksum of the 7 digits) mod 10.
    if len(b) != 9 or b[0] != "U" or not _digits(b[1:]):
        return False
    total = 0
    for i, ch in enumerate(reversed(b[1:8])):
        d = int(ch) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return (6 - total % 10) % 10 == int(b[8])


def _vat_fr(b: str) -> bool:
    if len(b) != 11 or not _digits(b[2:]):
        return False
    # The last 9 digits are a SIREN (Luhn), except Monaco's "000" numbers.
    if b[2:5] != "000" and not luhn_valid(b[2:]):
        return False
    if _digits(b[:2]):
        return int(b[:2]) == int(b[2:] + "12") % 97
    # Letter keys use a different rule; accept the strict format only.
    return all(c in _ALNUM36 for c in b[:2])


def _vat_it(b: str) -> bool:
    if len(b) != 11 or not _digits(b) or int(b[:7]) == 0:
        return False
    office = b[7:10]
    return ("001" <= office <= "100" or office in ("120", "121", "888", "999")) and luhn_valid(b)


def _vat_nl(b: str) -> bool:
    if len(b) != 12 or b[9] != "B" or not _digits(b[:9]) or not _digits(b[10:]):
        return False
    bsn = _weighted(b[:8], (9, 8, 7, 6, 5, 4, 3, 2)) - int(b[8])
    return bsn % 11 == 0 or _mod97("NL" + b) == 1


def _vat_pt(b: str) -> bool:
    if len(b) != 9 or not _digits(b) or b[0] == "0":
        return False
    s = sum((9 - i) * int(n) for i, n in enumerate(b[:8]))
    return str((11 - s) % 11 % 10) == b[8]


_VAT_RULES: dict[str, Callable[[str], bool]] = {
    "AT": _vat_at,
    "BE": lambda b: (
        len(b) == 10 and _digits(b) and b[0] in "01" and (int(b[:-2]) + int(b[-2:])) % 97 == 0
    ),
    "DE": lambda b: len(b) == 9 and _digits(b) and b[0] != "0" and _mod_11_10(b),
    "DK": lambda b: (
        len(b) == 8
        and _digits(b)
        and b[0] != "0"
        and _weighted(b, (2, 7, 6, 5, 4, 3, 2, 1)) % 11 == 0
    ),
    "FI": lambda b: (
        len(b) == 8 and _digits(b) and _weighted(b, (7, 9, 10, 5, 8, 4, 2, 1)) % 11 == 0
    ),
    "FR": _vat_fr,
    "IT": _vat_it,
    "NL": _vat_nl,
    "PL": lambda b: (
        len(b) == 10 and _digits(b) and _weighted(b, (6, 5, 7, 2, 3, 4, 5, 6, 7, -1)) % 11 == 0
    ),
    "PT": _vat_pt,
    "SE": lambda b: len(b) == 12 and _digits(b) and b.endswith("01") and luhn_valid(b[:10]),
}

#: Countries whose VAT number this module validates by check digit (others: format only).
VAT_CHECKSUM_COUNTRIES = frozenset(_VAT_RULES)


def vat_valid(country: str, body: str) -> bool | None:
    """True/False for countries with a check-digit rule here, None when only format applies."""
    rule = _VAT_RULES.get(country.upper())
    if rule is None:
        return None
    return bool(rule(body.upper()))
