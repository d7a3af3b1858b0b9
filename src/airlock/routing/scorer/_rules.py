"""The prior layer: instruction types the training data cannot teach.

The routing data has two prompt formats, MMLU multiple choice and GSM8K word problems.
Real chat traffic is mostly neither: greetings, short extraction, classification,
summarisation, translation and reformatting of a text the user supplies, which any
self-hosted model handles; and a smaller share of proofs, code, design and analysis,
which is what the frontier model is for. The learned free-form weights (fitted on
arithmetic word problems) cannot tell these apart, so a few hand-written rules do.

Rules apply to free-form prompts only and only look at the instruction: the first
`_HEAD` and last `_TAIL` characters (a pasted document in between is not read, which
also bounds the cost). "Complex" rules are checked first, so "summarise this proof and
show where it fails" is complex. A prompt no rule recognises keeps its learned score.
On the RouteLLM train split these rules fire on 0.2% of GSM8K prompts (see
docs/router.md); they are evaluated on tests/routing/data/free_form.csv.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

__all__ = ["COMPLEX_FLOOR", "SIMPLE_CEILING", "InstructionRules", "RuleMatch", "apply_rule"]

# A recognised simple instruction scores in [0, SIMPLE_CEILING] and a complex one in
# [COMPLEX_FLOOR, 1] (the learned within-family rank is squeezed into that band, so
# the order inside a band still follows the model). With strong_share between 5% and
# 95% the rules therefore decide these prompts, whatever the share.
SIMPLE_CEILING = 0.05
COMPLEX_FLOOR = 0.95

_HEAD = 300
_TAIL = 200
_SHORT = 100

RuleKind = Literal["simple", "complex"]


@dataclass(frozen=True, slots=True)
class RuleMatch:
    kind: RuleKind
    name: str

    @property
    def label(self) -> str:
        return f"{self.kind}:{self.name}"


_CODE_NOUNS = (
    r"(?:function|method|class|program|script|query|sql|regex|algorithm|api|endpoint|"
    r"bug|code|python|rust|java|javascript|typescript|golang|c\+\+|c11|c#|bash|shell|"
    r"unit tests?|data structure|cache|parser|compiler|kernel|ring buffer)"
)

# (name, trigger words, pattern). A pattern runs only when the instruction contains one
# of its trigger words (or, for an empty set, always): scanning 600 characters with
# every regex costs ~250 us, the word-set check a few us. Each pattern's alternatives
# start with one of its trigger words; tests check the filter changes no result.
_Rule = tuple[str, frozenset[str], str]


def _rule(name: str, triggers: str, pattern: str) -> _Rule:
    return name, frozenset(triggers.split()), pattern


_COMPLEX: tuple[_Rule, ...] = (
    _rule(
        "proof",
        "prove proof proofs derive derivation show demonstrate",
        r"\b(?:prove|proofs?(?!-of-concept)|derive|derivation|show that|demonstrate that)\b",
    ),
    _rule(
        "maths",
        "integral integrate differentiate derivative eigen eigenvalue eigenvalues "
        "eigenvector eigenvectors theorem lemma solve integer closed",
        r"\b(?:integral|integrate|differentiate|derivative|eigen\w*|theorem|lemma|"
        r"solve the system|integer solutions|closed form)\b",
    ),
    _rule(
        "code",
        "write implement debug refactor optimise optimize build code def class fn func "
        "public include",
        rf"\b(?:write|implement|debug|refactor|optimi[sz]e|build|code)\b[^\n]{{0,80}}"
        rf"\b{_CODE_NOUNS}\b|^\s*(?:def|class|fn|func|public|#include)\b",
    ),
    _rule(
        "analysis",
        "trade tradeoff tradeoffs pros design architecture analyse analyze compare "
        "critique step show plan",
        r"\b(?:trade-?offs?|pros and cons|design (?:a|an|the)\b|architecture|"
        r"analy[sz]e (?:whether|how|why|the trade)|(?:^|[.!?:]\s+)compare\b|critique|"
        r"step[- ]by[- ]step|show (?:the|your) (?:steps|work)|plan (?:a|an|the) )",
    ),
)

_SIMPLE: tuple[_Rule, ...] = (
    _rule(
        "greeting",
        "",
        r"\A\W*(?:hi|hello|hey|thanks|thank you|good (?:morning|afternoon|evening)|"
        r"bye|goodbye|cheers|ok(?:ay)?)\b",
    ),
    _rule(
        "summarise",
        "summarise summarize summary tl key main gist sum",
        r"\b(?:summari[sz]e|summary|tl;?dr|key points|main points|gist|sum up)\b",
    ),
    _rule(
        "extract",
        "extract pull find list identify get",
        r"\b(?:extract|pull out)\b|\b(?:find|list|identify|get)\b[^.?!\n]{0,40}"
        r"\b(?:dates?|names?|emails?|e-mail|address(?:es)?|phone|amounts?|entit(?:y|ies)|"
        r"keywords?|order number|invoice number)\b",
    ),
    _rule(
        "classify",
        "classify categorise categorize label tag sentiment spam detect which",
        r"\b(?:classify|categori[sz]e|label|tag|sentiment|spam|detect the language|"
        r"which language)\b",
    ),
    _rule("translate", "translate translation", r"\btranslat(?:e|ion)\b"),
    _rule(
        "rewrite",
        "rewrite rephrase paraphrase proofread reformat format spell fix convert turn "
        "make json csv yaml xml table markdown bullet",
        r"\b(?:rewrite|rephrase|paraphrase|proofread|reformat|format|spell-?check|"
        r"fix (?:the )?(?:grammar|spelling|typos|punctuation)|"
        r"convert [^\n]{0,40}\b(?:to|into) (?:json|csv|yaml|xml|a table|markdown|bullet)|"
        r"turn (?:this|it|the following) into|"
        r"make (?:this|it|the \w+)(?: \w+)? (?:shorter|longer|simpler|clearer|more|less)|"
        r"as (?:json|csv|a table|a list|bullet points|markdown))\b",
    ),
)

# A short one-line request with no digits and no maths symbols ("What is the capital
# of France?", "Write a haiku about autumn leaves.") is a lookup or a small writing
# task; short prompts with numbers (word problems) or asking "why" (an argument) are
# left to the learned model.
_SHORT_BLOCKERS = r"[\d=+*/^<>√∑∫π]|\bwhy\b"

_Compiled = tuple[tuple[str, frozenset[str], re.Pattern[str]], ...]


class InstructionRules:
    """Classifies a free-form prompt's instruction; build once and reuse (owns regexes)."""

    __slots__ = ("_complex", "_short_blockers", "_simple", "_word")

    def __init__(self) -> None:
        # Patterns see lower-cased text: cheaper than re.IGNORECASE.
        self._complex = _compile(_COMPLEX)
        self._simple = _compile(_SIMPLE)
        self._short_blockers = re.compile(_SHORT_BLOCKERS)
        self._word = re.compile(r"[a-z]+")

    def _window(self, text: str) -> str:
        stripped = text.strip()
        if len(stripped) <= _HEAD + _TAIL:
            return stripped.lower()
        return (stripped[:_HEAD] + "\n" + stripped[-_TAIL:]).lower()

    def match(self, text: str) -> RuleMatch | None:
        """The first rule that recognises the instruction, complex rules first."""
        return self._match(text, filtered=True)

    def _match(self, text: str, *, filtered: bool) -> RuleMatch | None:
        window = self._window(text)
        words = frozenset(self._word.findall(window))
        code_fence = "```" in window
        if code_fence:
            return RuleMatch("complex", "code")
        for kind, rules in (("complex", self._complex), ("simple", self._simple)):
            for name, triggers, pattern in rules:
                if filtered and triggers and triggers.isdisjoint(words):
                    continue
                if pattern.search(window):
                    return RuleMatch("complex" if kind == "complex" else "simple", name)
        if len(window) <= _SHORT and "\n" not in window and not self._short_blockers.search(window):
            return RuleMatch("simple", "short_request")
        return None


def _compile(rules: tuple[_Rule, ...]) -> _Compiled:
    return tuple((name, triggers, re.compile(p, re.MULTILINE)) for name, triggers, p in rules)


def apply_rule(rank: float, match: RuleMatch | None) -> float:
    """Squeeze the learned within-family rank into the band of the matched rule."""
    if match is None:
        return rank
    if match.kind == "simple":
        return SIMPLE_CEILING * rank
    return COMPLEX_FLOOR + (1.0 - COMPLEX_FLOOR) * rank
