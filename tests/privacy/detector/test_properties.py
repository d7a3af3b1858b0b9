"""Properties over generated text: offsets stay in bounds, valid cards are always found."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from airlock.privacy.detector import ENTITY_TYPES, Detector

_DETECTOR = Detector()  # built once: the strategies run many examples


def _card(rnd: random.Random) -> str:
    body = "4" + "".join(rnd.choice("0123456789") for _ in range(14))
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch) * (2 if i % 2 == 0 else 1)
        total += d - 9 if d > 9 else d
    return body + str((10 - total % 10) % 10)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=400))
def test_offsets_in_bounds_for_any_text(text: str) -> None:
    verdict = _DETECTOR.detect(text)
    assert verdict.sensitive == bool(verdict.entities)
    last_end = 0
    for e in verdict.entities:
        assert e.type in ENTITY_TYPES
        assert 0 <= e.start < e.end <= len(text)
        assert e.start >= last_end  # sorted, non-overlapping
        last_end = e.end
        assert 0.0 < e.score <= 1.0


@settings(max_examples=100, deadline=None)
@given(
    st.text(alphabet=st.characters(categories=["L", "Zs"]), max_size=60),
    st.text(alphabet=st.characters(categories=["L", "Zs"]), max_size=60),
    st.integers(min_value=0, max_value=2**32),
)
def test_valid_card_found_anywhere(prefix: str, suffix: str, seed: int) -> None:
    card = _card(random.Random(seed))
    text = f"{prefix} card {card} {suffix}"
    start = text.index(f" {card} ") + 1
    spans = {(e.type, e.start, e.end) for e in _DETECTOR.detect(text).entities}
    assert ("CREDIT_CARD", start, start + len(card)) in spans
