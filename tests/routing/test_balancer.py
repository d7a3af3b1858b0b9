"""Replica order: least outstanding requests, turns among equals, prefix affinity."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from airlock.routing.balancer import Balancer, prefix_key


@dataclass
class Rep:
    id: str
    in_flight: int = 0


def _ids(reps: list[Rep]) -> list[str]:
    return [r.id for r in reps]


def test_least_loaded_first() -> None:
    a, b, c = Rep("a", 3), Rep("b", 0), Rep("c", 1)
    assert _ids(Balancer().order([a, b, c], None)) == ["b", "c", "a"]


def test_equally_loaded_replicas_take_turns() -> None:
    # One request at a time: with plain sorting every request went to the first replica.
    bal = Balancer()
    reps = [Rep("a"), Rep("b"), Rep("c")]
    firsts = Counter(bal.order(reps, None)[0].id for _ in range(30))
    assert firsts == {"a": 10, "b": 10, "c": 10}


def test_turns_are_kept_per_replica_set() -> None:
    # Requests for two models interleaved must not lock either model onto one replica.
    bal = Balancer()
    x = [Rep("x1"), Rep("x2")]
    y = [Rep("y1"), Rep("y2")]
    firsts: Counter[str] = Counter()
    for _ in range(10):
        firsts[bal.order(x, None)[0].id] += 1
        firsts[bal.order(y, None)[0].id] += 1
    assert firsts == {"x1": 5, "x2": 5, "y1": 5, "y2": 5}


def test_load_beats_turns() -> None:
    bal = Balancer()
    reps = [Rep("a"), Rep("b", in_flight=1)]
    assert {bal.order(reps, None)[0].id for _ in range(5)} == {"a"}
    # Every replica is still in the list (later ones are the retries).
    assert sorted(_ids(bal.order(reps, None))) == ["a", "b"]


def test_empty_and_single() -> None:
    bal = Balancer()
    assert bal.order([], prefix_key("x" * 300)) == []
    assert _ids(bal.order([Rep("only", 9)], None)) == ["only"]


def test_prefix_affinity_within_slack() -> None:
    bal = Balancer(affinity_slack=2)
    a, b = Rep("a"), Rep("b")
    key = prefix_key("system prompt " * 40)
    bal.served(key, "b")
    a.in_flight, b.in_flight = 0, 2
    assert _ids(bal.order([a, b], key)) == ["b", "a"]
    b.in_flight = 3  # now busier than the least loaded by more than the slack
    assert _ids(bal.order([a, b], key)) == ["a", "b"]


def test_affinity_owner_gone_from_the_candidates() -> None:
    bal = Balancer()
    key = prefix_key("p" * 500)
    bal.served(key, "gone")
    assert sorted(_ids(bal.order([Rep("a"), Rep("b")], key))) == ["a", "b"]


def test_affinity_table_is_bounded_lru() -> None:
    bal = Balancer(max_entries=2)
    k1, k2, k3 = (prefix_key(ch * 300) for ch in "xyz")
    bal.served(k1, "b")
    bal.served(k2, "b")
    bal.served(k1, "b")  # refreshes k1
    bal.served(k3, "b")  # evicts k2, the least recently served
    reps = [Rep("a"), Rep("b")]
    assert bal.order(reps, k1)[0].id == "b"
    assert bal.order(reps, k3)[0].id == "b"
    assert {bal.order(reps, k2)[0].id for _ in range(2)} == {"a", "b"}


def test_prefix_key() -> None:
    assert prefix_key("short") is None
    assert prefix_key("a" * 255) is None
    long = "You are a careful assistant. " * 50
    assert prefix_key(long) == prefix_key(long + "different question at the end")
    assert prefix_key(long) != prefix_key("X" + long)
    key = prefix_key(long)
    # A digest, not the text.
    assert key is not None
    assert len(key) == 24
    assert "assistant" not in key
    served = Balancer()
    served.served(None, "a")  # no key: nothing remembered, no error
