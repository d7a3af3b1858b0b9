"""What a LiteLLM import found wrong: problems, unsupported keys and ``airlock_ignore``.

Everything is collected first and raised as one :class:`~airlock.config.ConfigError`,
so the operator sees the whole list at once. Messages name key paths, never values.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from airlock.config import ConfigError

__all__ = ["Findings", "covers", "generalise"]


@dataclass
class Findings:
    """The problems and unsupported key paths found so far, and the checks that add them."""

    ignore: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    unsupported: list[str] = field(default_factory=list)
    used_ignores: set[str] = field(default_factory=set)

    def problem(self, path: str, message: str) -> None:
        self.problems.append(f"{path}: {message}")

    def not_supported(self, path: str) -> None:
        hits = [entry for entry in self.ignore if covers(entry, path)]
        if hits:
            self.used_ignores.update(hits)
        else:
            self.unsupported.append(path)

    def extra_keys(self, section: Mapping[str, Any], path: str, known: frozenset[str]) -> None:
        for key in section:
            if key not in known:
                self.not_supported(f"{path}.{key}" if path else str(key))

    def ignore_list(self, value: Any) -> list[str]:
        if value is None:
            return []
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            self.problem("airlock_ignore", "must be a list of key paths")
            return []
        return list(dict.fromkeys(value))

    def raise_if_failed(self, source: str) -> None:
        for entry in self.ignore:
            if entry not in self.used_ignores:
                self.problem("airlock_ignore", f"'{entry}' matches no unsupported key")
        if not self.problems and not self.unsupported:
            return
        lines = [f"LiteLLM config {source} cannot be imported as it is:"]
        lines += [f"  {p}" for p in self.problems]
        if self.unsupported:
            lines.append("keys airlock does not support (it would not honour them):")
            lines += [f"  {p}" for p in self.unsupported]
            suggested = list(dict.fromkeys(generalise(p) for p in self.unsupported))
            lines.append(
                "remove them, or, where ignoring them is acceptable, acknowledge them "
                "with a top-level list:"
            )
            lines.append("  airlock_ignore:")
            lines += [f'    - "{p}"' for p in suggested]
        raise ConfigError("\n".join(lines))

    def number(self, value: Any, path: str, minimum: float | None = None) -> float | None:
        if value is None:
            return None
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        if ok and math.isfinite(value) and (value >= minimum if minimum is not None else value > 0):
            return float(value)
        self.problem(path, "must be a number" + (" >= 0" if minimum is not None else " > 0"))
        return None

    def integer(self, value: Any, path: str, minimum: int) -> int | None:
        if isinstance(value, int) and not isinstance(value, bool) and value >= minimum:
            return value
        self.problem(path, f"must be an integer >= {minimum}")
        return None


def generalise(path: str) -> str:
    """``model_list[3].litellm_params.rpm`` -> ``model_list[*].litellm_params.rpm``."""
    return re.sub(r"\[\d+\]", "[*]", path)


def covers(entry: str, path: str) -> bool:
    """Does an airlock_ignore entry name ``path`` or a section containing it?"""
    for candidate in (path, generalise(path)):
        if candidate == entry or candidate.startswith((entry + ".", entry + "[")):
            return True
    return False
