"""Check-digit rules against published valid numbers and single-digit corruptions."""

from __future__ import annotations

import pytest

from airlock.privacy.detector._checksums import (
    aba_valid,
    iban_valid,
    itin_valid,
    luhn_valid,
    nhs_valid,
    ssn_valid,
    vat_valid,
)


def _corrupt_last(number: str) -> str:
    last = number[-1]
    return number[:-1] + str((int(last) + 1) % 10)


@pytest.mark.parametrize("number", ["4111111111111111", "378282246310005", "5555555555554444"])
def test_luhn(number: str) -> None:
    assert luhn_valid(number)
    assert not luhn_valid(_corrupt_last(number))


@pytest.mark.parametrize("bad", ["", "4", "41111111a1111111", "٤١١١١١١١١١١١١١١١"])
def test_luhn_rejects_malformed(bad: str) -> None:
    assert not luhn_valid(bad)


@pytest.mark.parametrize(
    "iban", ["GB82WEST12345698765432", "DE89370400440532013000", "FR1420041010050500013M02606"]
)
def test_iban(iban: str) -> None:
    assert iban_valid(iban)
    assert iban_valid(iban.lower())
    assert not iban_valid(_corrupt_last(iban))


@pytest.mark.parametrize(
    "bad", ["GB82WEST1234569876543", "XX82WEST12345698765432", "GB82WEST12345698765432X", "GB"]
)
def test_iban_rejects_wrong_length_or_country(bad: str) -> None:
    assert not iban_valid(bad)


def test_nhs() -> None:
    assert nhs_valid("9434765919")
    assert not nhs_valid("9434765918")
    assert not nhs_valid("943476591")  # 9 digits
    # A body whose check digit would be 10 is never issued.
    body = next(
        f"{n:09d}"
        for n in range(100000000, 100001000)
        if 11 - sum(int(d) * w for d, w in zip(f"{n:09d}", range(10, 1, -1), strict=True)) % 11
        == 10
    )
    assert not any(nhs_valid(body + str(d)) for d in range(10))


def test_aba() -> None:
    assert aba_valid("021000021")
    assert aba_valid("011000015")
    assert not aba_valid("021000022")
    assert not aba_valid("000000000")
    assert not aba_valid("500000005")  # 50 is not a Federal Reserve prefix


@pytest.mark.parametrize(
    ("number", "valid"),
    [
        ("536221234", True),
        ("000221234", False),
        ("666221234", False),
        ("912221234", False),
        ("536001234", False),
        ("536220000", False),
        ("078051120", False),  # the SSA-voided Woolworth wallet number
        ("111111111", False),
    ],
)
def test_ssn_rules(number: str, valid: bool) -> None:
    assert ssn_valid(number) is valid


@pytest.mark.parametrize(
    ("group", "valid"),
    [(49, False), (50, True), (65, True), (66, False), (70, True), (88, True), (89, False),
     (90, True), (92, True), (93, False), (94, True), (99, True)],
)  # fmt: skip
def test_itin_groups(group: int, valid: bool) -> None:
    assert itin_valid(f"912{group:02d}1234") is valid
    assert not itin_valid(f"812{group:02d}1234")


@pytest.mark.parametrize(
    "vat",
    ["DE136695976", "FR40303265045", "IT00743110157", "NL004495445B01", "PL8567346215",
     "PT501964843", "ATU13585627", "BE0403019261", "DK13585628", "SE556188840401", "FI20774740"],
)  # fmt: skip
def test_vat_checksums(vat: str) -> None:
    country, body = vat[:2], vat[2:]
    assert vat_valid(country, body) is True
    # Corrupt the check digit (for NL it sits before the "B01" suffix).
    check_end = len(body) - 3 if country == "NL" else len(body)
    corrupted = _corrupt_last(body[:check_end]) + body[check_end:]
    assert vat_valid(country, corrupted) is False


def test_vat_format_only_country_is_undecided() -> None:
    assert vat_valid("CZ", "12345678") is None
