from __future__ import annotations

import pytest

from airlock.engine.stop_filter import StopFilter


def _run(stops: list[str], pieces: list[str]) -> tuple[str, bool]:
    f = StopFilter(stops)
    out = "".join(f.feed(p) for p in pieces)
    return out + f.flush(), f.stopped


def test_no_stops_passes_everything_through_immediately() -> None:
    f = StopFilter([])
    assert f.feed("hello") == "hello"
    assert f.feed(" world") == " world"
    assert f.flush() == ""
    assert not f.stopped


@pytest.mark.parametrize("split", range(1, 12))
def test_stop_split_anywhere_is_never_emitted(split: int) -> None:
    text = "Hello END there"
    out, stopped = _run(["END"], [text[:split], text[split:]])
    assert out == "Hello "
    assert stopped


def test_stop_split_one_char_per_piece() -> None:
    out, stopped = _run(["<|end|>"], list("abc<|end|>def"))
    assert (out, stopped) == ("abc", True)


def test_text_that_only_looks_like_a_stop_prefix_is_released() -> None:
    f = StopFilter(["STOP"])
    assert f.feed("ST") == ""  # could still become STOP
    assert f.feed("AY") == "STAY"  # no longer can
    assert f.feed("ST") == ""
    assert f.flush() == "ST"  # generation ended: the held prefix is real text
    assert not f.stopped


def test_earliest_of_several_stops_wins() -> None:
    out, stopped = _run(["world", "lo w"], ["hello world"])
    assert (out, stopped) == ("hel", True)


def test_everything_after_a_stop_is_dropped() -> None:
    f = StopFilter(["x"])
    assert f.feed("abxcd") == "ab"
    assert f.feed("more") == ""
    assert f.flush() == ""


def test_empty_stop_strings_are_ignored() -> None:
    out, stopped = _run(["", "Q"], ["aQb"])
    assert (out, stopped) == ("a", True)


def test_overlapping_prefixes_hold_the_longest_candidate() -> None:
    f = StopFilter(["aab"])
    assert f.feed("aa") == ""
    assert f.feed("a") == "a"  # "aaa": only the trailing "aa" can still start the stop
    assert f.feed("b") == ""
    assert f.stopped
