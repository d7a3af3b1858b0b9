"""The detector on each entity type: positives with exact spans, and the negatives beside them."""

from __future__ import annotations

import dataclasses
import itertools

import pytest

from airlock.errors import BadRequestError
from airlock.privacy.detector import ENTITY_TYPES, Detector, Verdict


@pytest.fixture(scope="module")
def detector() -> Detector:
    return Detector()


def _found(detector: Detector, text: str) -> list[tuple[str, str]]:
    return [(e.type, text[e.start : e.end]) for e in detector.detect(text).entities]


_IPV6 = "2a02:e3db:896d:91ae:fc3f:ebad:3d17:8853"
_ADDRESS = "742 Evergreen Terrace, Springfield, IL 62704"
_GITHUB = "ghp_abcdefghijklmnopqrstuvwxyz0123456789AB"
_OPENAI = "sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv"
_JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N"
_PEM = "-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY-----"

# (type, text, the value that must be reported with exactly these bounds)
POSITIVES = [
    ("US_SSN", "My SSN is 536-22-1234, please update it.", "536-22-1234"),
    ("US_SSN", "social security number 536221234", "536221234"),
    ("US_ITIN", "My ITIN is 912-70-1234.", "912-70-1234"),
    ("CREDIT_CARD", "Charge card 4111 1111 1111 1111 exp 04/27.", "4111 1111 1111 1111"),
    ("CREDIT_CARD", "Amex 3782-822463-10005 on file", "3782-822463-10005"),
    ("CREDIT_CARD", "visa 4111111111111111 cvv 123", "4111111111111111"),
    ("IBAN_CODE", "Pay to DE89 3704 0044 0532 0130 00 by Friday", "DE89 3704 0044 0532 0130 00"),
    ("IBAN_CODE", "IBAN GB82WEST12345698765432.", "GB82WEST12345698765432"),
    ("UK_NHS", "NHS number 943 476 5919 for the referral", "943 476 5919"),
    ("UK_NINO", "NI number AB 12 34 56 C on the payslip", "AB 12 34 56 C"),
    ("UK_NINO", "NINO: JG103759A", "JG103759A"),
    ("US_PASSPORT", "passport number 912345678 expires 2031", "912345678"),
    ("US_PASSPORT", "Passport no. C03005988.", "C03005988"),
    ("US_BANK_NUMBER", "bank account number 12345678901", "12345678901"),
    ("ABA_ROUTING_NUMBER", "routing number 021000021", "021000021"),
    ("EU_VAT", "Our VAT number is DE136695976.", "DE136695976"),
    ("EU_VAT", "TVA FR40303265045", "FR40303265045"),
    ("IP_ADDRESS", "Requests from 8.8.4.4 failed", "8.8.4.4"),
    ("IP_ADDRESS", f"gateway {_IPV6} drops", _IPV6),
    ("EMAIL_ADDRESS", "Write to jane.roe+ops@acme.io today", "jane.roe+ops@acme.io"),
    ("PHONE_NUMBER", "Call (415) 555-0132 after 5", "(415) 555-0132"),
    ("PHONE_NUMBER", "Tel +44 20 7946 0958", "+44 20 7946 0958"),
    ("PHONE_NUMBER", "mobile 07700 900123", "07700 900123"),
    ("MEDICAL_RECORD_NUMBER", "MRN 00482913: discharge notes", "00482913"),
    ("DATE_OF_BIRTH", "DOB: 04/12/1987", "04/12/1987"),
    ("DATE_OF_BIRTH", "date of birth March 3, 1990", "March 3, 1990"),
    ("HEALTH_INSURANCE_ID", "member ID XGH123456789", "XGH123456789"),
    ("HEALTH_INSURANCE_ID", "Medicare 1EG4-TE5-MK73 was denied", "1EG4-TE5-MK73"),
    ("MEDICAL_CONDITION", "Patient John Smith was diagnosed with diabetes.", "diabetes"),
    ("MEDICAL_CONDITION", "Dr. Okafor prescribed sertraline for Ana Lima.", "sertraline"),
    ("PERSON", "Patient John Smith was diagnosed with diabetes.", "John Smith"),
    ("PERSON", "My name is Priya Patel and I need help.", "Priya Patel"),
    ("PERSON", "Dear Ms. Olga Kowalczyk,", "Olga Kowalczyk"),
    ("PERSON", "Please call Maria da Silva about the rent.", "Maria da Silva"),
    ("STREET_ADDRESS", f"She lives at {_ADDRESS}.", _ADDRESS),
    ("STREET_ADDRESS", "Ship it to Hauptstraße 5.", "Hauptstraße 5"),
    ("API_KEY", "key AKIAZ3KX7QXXW5BRT2PQ leaked", "AKIAZ3KX7QXXW5BRT2PQ"),
    ("API_KEY", f"token {_GITHUB}", _GITHUB),
    ("API_KEY", f"OPENAI_API_KEY={_OPENAI}", _OPENAI),
    ("API_KEY", "slack xoxb-12345678901-abcdefGHIJ12", "xoxb-12345678901-abcdefGHIJ12"),
    ("API_KEY", "stripe sk_live_4eC39HqLyjWDarjtT1zdp7dc", "sk_live_4eC39HqLyjWDarjtT1zdp7dc"),
    ("API_KEY", f"Authorization: Bearer {_JWT}", _JWT),
    ("PRIVATE_KEY", f"fix this:\n{_PEM}\nthanks", _PEM),
    ("PASSWORD", "login admin / password: Tr0ub4dor&3", "Tr0ub4dor&3"),
    ("PASSWORD", "the wifi password is sunshine42!", "sunshine42"),
]  # fmt: skip


@pytest.mark.parametrize(("etype", "text", "value"), POSITIVES)
def test_positive_with_exact_span(detector: Detector, etype: str, text: str, value: str) -> None:
    verdict = detector.detect(text)
    start = text.index(value)
    spans = {(e.type, e.start, e.end) for e in verdict.entities}
    assert (etype, start, start + len(value)) in spans, _found(detector, text)
    assert verdict.sensitive


def test_every_type_has_a_positive() -> None:
    assert {p[0] for p in POSITIVES} == ENTITY_TYPES


NEGATIVES = [
    # numbers that fail their checks
    "Is 4111 1111 1111 1112 a valid card?",
    "IBAN GB82WEST12345698765433 bounced",
    "NHS number 943 476 5918 is wrong",
    "SSN 000-12-3456 is not real",
    "SSN 666-12-3456 is not real",
    "routing number 021000022",
    "VAT DE136695975",
    # order numbers, invoices, references, versions, code
    "Order #4111111111111111 has shipped",
    "Invoice 1234567890123 is overdue",
    "Tracking number 9400111899223197428490",
    "Upgrade from version 10.2.3.4 to the latest",
    "pip install numpy==1.26.4",
    "def login(user, password):\n    return check(user, password)",
    "password = os.environ.get('DB_PASSWORD')",
    "Enter your password: ********",
    "The password is incorrect, please reset it.",
    "if password != confirm_password: raise ValueError('mismatch')",
    "Use sk-learn? No, the package is scikit-learn.",
    "Bind the server to 0.0.0.0 or 127.0.0.1",
    "See user@example.com and 192.0.2.1 in the docs.",
    "git clone git@github.com:org/repo.git",
    "Deploy commit 3f9a2c1e5b7d8f0a1c2e4b6d8f0a2c4e6b8d0f2a",
    "print(b[::2])",
    "NINO QQ123456A is HMRC's example, never issued",
    # public figures and general knowledge
    "Who was Abraham Lincoln?",
    "Abraham Lincoln was born on February 12, 1809. What did he achieve?",
    "Did Albert Einstein have dyslexia?",
    "Who lives at 10 Downing Street?",
    "What are the symptoms of diabetes?",
    "How does metformin lower blood sugar?",
    # ordinary word problems
    "Janet has 16 eggs and eats 3. How many are left?",
    "A train travels 120 km in 2 hours. What is its speed?",
    "The meeting is on 12/03/2024 at 3pm in room 204.",
    "There are 5 Great Lakes in North America.",
    "",
    "   ",
]


@pytest.mark.parametrize("text", NEGATIVES)
def test_negative(detector: Detector, text: str) -> None:
    verdict = detector.detect(text)
    assert not verdict.sensitive, _found(detector, text)
    assert verdict.entities == ()


def test_verdict_holds_no_values(detector: Detector) -> None:
    text = "SSN 536-22-1234, card 4111 1111 1111 1111, patient John Smith has diabetes"
    verdict = detector.detect(text)
    assert verdict.sensitive
    dumped = repr(verdict) + str(dataclasses.asdict(verdict))
    for secret in ("536-22-1234", "4111", "John", "Smith", "diabetes"):
        assert secret not in dumped
    for entity in verdict.entities:
        fields = {f.name for f in dataclasses.fields(entity)}
        assert fields == {"type", "start", "end", "score", "text_index"}


def test_verdict_is_frozen_and_counts(detector: Detector) -> None:
    verdict = detector.detect("SSN 536-22-1234 and 536-22-1235, mail a.b@acme.io")
    with pytest.raises(dataclasses.FrozenInstanceError):
        verdict.sensitive = False  # type: ignore[misc]
    assert verdict.counts() == {"EMAIL_ADDRESS": 1, "US_SSN": 2}
    assert verdict.types() == frozenset({"EMAIL_ADDRESS", "US_SSN"})
    assert Verdict(sensitive=False).counts() == {}


def test_topics(detector: Detector) -> None:
    assert "health" in detector.detect("What are the symptoms of diabetes?").topics
    assert "legal" in detector.detect("My attorney filed the lawsuit yesterday").topics
    assert "finance" in detector.detect("IBAN GB82WEST12345698765432").topics
    assert "credentials" in detector.detect("password: Tr0ub4dor&3").topics
    assert detector.detect("What is 2 + 2?").topics == frozenset()


def test_unicode_offsets_are_python_string_indices(detector: Detector) -> None:
    # Emoji, combining marks and "İ" (which lower-cases to two code points) before the
    # entities must not shift their offsets.
    text = "İİİ 🙂 naïve café — Zoë: SSN 536-22-1234, e-mail zoë.müller@exämple.de"
    verdict = detector.detect(text)
    got = {(e.type, text[e.start : e.end]) for e in verdict.entities}
    assert ("US_SSN", "536-22-1234") in got
    assert ("EMAIL_ADDRESS", "zoë.müller@exämple.de") in got


def test_unicode_names(detector: Detector) -> None:
    text = "Patient Łukasz Żółkiewski was diagnosed with asthma."
    assert ("PERSON", "Łukasz Żółkiewski") in _found(detector, text)


def test_detect_many_indexes_each_text(detector: Detector) -> None:
    texts = ["nothing here", "SSN 536-22-1234", "mail a.b@acme.io"]
    verdict = detector.detect_many(texts)
    by_index = {
        (e.text_index, e.type, texts[e.text_index][e.start : e.end]) for e in verdict.entities
    }
    assert by_index == {(1, "US_SSN", "536-22-1234"), (2, "EMAIL_ADDRESS", "a.b@acme.io")}
    assert detector.detect_many([]) == Verdict(sensitive=False)


def test_detect_many_rejects_bad_input(detector: Detector) -> None:
    with pytest.raises(BadRequestError, match="sequence of strings"):
        detector.detect_many("SSN 536-22-1234")
    with pytest.raises(BadRequestError, match="text 1 is of type int") as exc:
        detector.detect_many(["ok", 536221234])  # type: ignore[list-item]
    assert "536221234" not in str(exc.value)


def test_overlapping_candidates_keep_one_entity(detector: Detector) -> None:
    # 943 476 5919 is both a valid NHS number and phone-shaped; NHS wording decides.
    text = "NHS number 943 476 5919"
    assert _found(detector, text) == [("UK_NHS", "943 476 5919")]
    entities = detector.detect("call (415) 555-0132, NHS 943 476 5919").entities
    for a, b in itertools.pairwise(entities):
        assert a.end <= b.start


def test_card_followed_by_cvv(detector: Detector) -> None:
    text = "card 4111 1111 1111 1111 123"
    assert _found(detector, text) == [("CREDIT_CARD", "4111 1111 1111 1111")]


def test_order_context_suppresses_luhn_coincidence_but_card_context_wins(
    detector: Detector,
) -> None:
    assert not detector.detect("order 4111111111111111").sensitive
    assert detector.detect("order paid with card 4111111111111111").sensitive


def test_public_figure_with_personal_wording_is_still_flagged(detector: Detector) -> None:
    # A public figure's name does not hide a patient named through a trigger word.
    assert detector.detect("patient Maria Lopez, born on 03/04/1950, met Albert Einstein").sensitive
