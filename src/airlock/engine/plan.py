"""A job after validation: token ids, limits and the decoding strategy to use."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from airlock.engine.gbnf import Grammar
from airlock.engine.types import SamplingParams

__all__ = ["OutputMode", "Plan"]

OutputMode = Literal["text", "tools", "auto"]
"""``text``: plain or grammar-constrained text. ``tools``: a tool call is required (the
engine writes the first marker itself). ``auto``: the model chooses between text and calls."""


@dataclass(frozen=True, slots=True)
class Plan:
    prompt_tokens: tuple[int, ...]
    max_new_tokens: int
    sampling: SamplingParams
    mode: OutputMode = "text"
    # Grammar for the answer from its first token (json modes; in ``auto`` with a JSON
    # response format it also covers "<tool_call>\n" followed by calls).
    text_grammar: str | None = None
    # Grammar for the text after the first "<tool_call>\n" marker.
    tool_grammar: str | None = None
    # The same two grammars read by airlock (for budget-aware closing); None when absent.
    text_parse: Grammar | None = None
    tool_parse: Grammar | None = None
    tool_names: tuple[str, ...] = ()
    marker_tokens: tuple[int, ...] = ()
    echo: str | None = None
