"""Choosing a replica: least outstanding requests, with prefix affinity.

Requests that share a long prefix (system prompt, conversation so far) prefer the
replica that served that prefix last, so vLLM's prefix cache is reused, unless that
replica is busier than the least-loaded one by more than ``affinity_slack``.

Replicas with the same number of requests in flight take turns (round robin per
replica set); otherwise one-at-a-time traffic would always land on the first replica.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Sequence
from typing import Protocol, TypeVar

__all__ = ["Balancer", "Replica", "prefix_key"]

_PREFIX_CHARS = 1024
_MIN_PREFIX_CHARS = 256


class Replica(Protocol):
    @property
    def id(self) -> str: ...

    @property
    def in_flight(self) -> int: ...


R = TypeVar("R", bound=Replica)


def prefix_key(text: str) -> str | None:
    """A digest of the first characters of a prompt; short prompts have no affinity."""
    if len(text) < _MIN_PREFIX_CHARS:
        return None
    return hashlib.blake2b(text[:_PREFIX_CHARS].encode("utf-8"), digest_size=12).hexdigest()


class Balancer:
    def __init__(self, affinity_slack: int = 4, max_entries: int = 10_000) -> None:
        self._slack = affinity_slack
        self._max = max_entries
        self._affinity: OrderedDict[str, str] = OrderedDict()
        # Next starting offset per replica set (keyed by ids: one entry per model).
        self._turn: dict[tuple[str, ...], int] = {}

    def order(self, replicas: Sequence[R], key: str | None) -> list[R]:
        """Replicas in the order to try them: preferred first."""
        rotated = list(replicas)
        if len(rotated) > 1:
            ids = tuple(r.id for r in rotated)
            start = self._turn.get(ids, 0) % len(rotated)
            self._turn[ids] = start + 1
            rotated = rotated[start:] + rotated[:start]
        # Stable sort: equally loaded replicas keep their rotated order.
        ranked = sorted(rotated, key=lambda r: r.in_flight)
        if key is None or not ranked:
            return ranked
        owner = self._affinity.get(key)
        least = ranked[0].in_flight
        for i, rep in enumerate(ranked):
            if rep.id == owner and rep.in_flight <= least + self._slack:
                return [rep, *ranked[:i], *ranked[i + 1 :]]
        return ranked

    def served(self, key: str | None, replica_id: str) -> None:
        if key is None:
            return
        self._affinity[key] = replica_id
        self._affinity.move_to_end(key)
        while len(self._affinity) > self._max:
            self._affinity.popitem(last=False)
