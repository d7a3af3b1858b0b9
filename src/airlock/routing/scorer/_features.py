"""Cheap, deterministic features of a prompt: a dense vector plus a set of word tokens.

Everything here is a handful of precompiled regular expressions and set lookups over
at most `max_chars` characters, so a 2,000-character prompt costs well under a
millisecond. Lengths are measured on the whole prompt; patterns only on its head, which
bounds the cost of pathological inputs.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

__all__ = [
    "DEFAULT_MAX_CHARS",
    "DENSE_FEATURES",
    "SEGMENTS",
    "FeatureExtractor",
    "PromptFeatures",
]

DEFAULT_MAX_CHARS = 6000

DENSE_FEATURES: tuple[str, ...] = (
    "log_chars",
    "log_words",
    "log_lines",
    "log_sentences",
    "mean_word_len",
    "digit_ratio",
    "log_numbers",
    "big_numbers",
    "math_symbols",
    "latex",
    "equations",
    "code",
    "mc_choices",
    "mc_numeric_choices",
    "mc_choice_len",
    "statement_pair",
    "scenario_pair",
    "negated_question",
    "above_options",
    "which_question",
    "how_many_question",
    "why_how_question",
    "question_marks",
    "multi_step_terms",
    "instruction_verbs",
    "passage_len",
    "quotes",
    "capitalised_ratio",
    "money_units",
    "domain_law",
    "domain_medicine",
    "domain_math",
    "domain_science",
    "domain_finance",
    "domain_ethics",
    "domain_code",
)


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Multiple-choice prompts (two or more lettered option lines) and everything else get
# separate weights: the same feature means different things in the two formats.
SEGMENTS: tuple[str, ...] = ("multiple_choice", "free_form")
_MC_INDEX = DENSE_FEATURES.index("mc_choices")

_DOMAINS: dict[str, frozenset[str]] = {
    "domain_law": _words(
        "plaintiff defendant court statute contract tort negligence jurisdiction appeal "
        "constitutional liability testator easement felony misdemeanor prosecution jury lease "
        "covenant damages breach lawful unlawful evidence hearsay amendment mortgage deed "
        "tenant landlord grantee grantor injunction ordinance"
    ),
    "domain_medicine": _words(
        "patient diagnosis symptoms clinical dose disease syndrome mg treatment therapy "
        "infection chronic acute blood renal cardiac tumor examination physician pregnancy "
        "medication lesion nerve artery vein hospital virus bacteria gene mutation protein "
        "enzyme"
    ),
    "domain_math": _words(
        "equation integer prime polynomial function derivative integral matrix vector "
        "probability variance theorem proof group ring field sum product ratio solve value "
        "values real roots root sqrt log sin cos finite infinite converges series set subset"
    ),
    "domain_science": _words(
        "energy force mass velocity acceleration electron atom molecule reaction temperature "
        "pressure charge wave frequency quantum photon gravity orbit planet star cell species "
        "evolution chemical acid compound"
    ),
    "domain_finance": _words(
        "price cost profit revenue tax interest inflation gdp market demand supply investment "
        "bank loan income dollars asset liabilities equity depreciation monetary fiscal "
        "tariff"
    ),
    "domain_ethics": _words(
        "moral morally wrong ethical ethics virtue duty kant utilitarian philosophy justice "
        "rights consequentialism argues argument claim belief"
    ),
    "domain_code": _words(
        "function code program algorithm compile runtime variable array pointer loop "
        "recursion python java class object return int string boolean memory cache binary bit "
        "byte"
    ),
}

_MULTI_STEP = _words(
    "then after each every remaining total twice half percent per times rest left first "
    "second third next finally altogether respectively"
)
_UNITS = _words("km kg cm mph hour hours minute minutes mile miles")
_CODE_MARKERS = (
    "```",
    "def ",
    "return",
    "#include",
    "print(",
    "==",
    "!=",
    "++",
    "->",
    "=>",
    ";\n",
    "{",
    "}",
)
_MONEY_MARKERS = ("$", "%", "€", "£")
_NEGATIONS = (" NOT ", "EXCEPT", "LEAST", "FALSE", "INCORRECT")
_ABOVE = ("of the above", "all of the following", "none of the following")
_INSTRUCTIONS = _words(
    "explain compare analyze analyse prove derive calculate compute design implement "
    "evaluate justify describe summarize summarise list outline discuss determine "
    "estimate"
)


@dataclass(frozen=True, slots=True)
class PromptFeatures:
    dense: tuple[float, ...]
    tokens: frozenset[str]

    @property
    def segment(self) -> str:
        return SEGMENTS[0] if self.dense[_MC_INDEX] >= 2.0 else SEGMENTS[1]


def _log(count: float) -> float:
    return math.log1p(count)


class FeatureExtractor:
    """Turns a prompt into `PromptFeatures`; build once and reuse (it owns the regexes)."""

    __slots__ = (
        "_cap",
        "_choice",
        "_equation",
        "_latex",
        "_math",
        "_max_chars",
        "_number",
        "_sentence",
        "_token",
    )

    def __init__(self, max_chars: int = DEFAULT_MAX_CHARS) -> None:
        if max_chars < 1:
            raise ValueError("max_chars must be positive")
        self._max_chars = max_chars
        self._token = re.compile(r"[a-z][a-z']+")
        self._number = re.compile(r"\d+(?:[.,]\d+)*")
        self._sentence = re.compile(r"[.!?](?:\s|$)")
        self._math = re.compile(r"[+\-*/=^<>×÷√∑∫π≤≥≠±|]")
        self._latex = re.compile(r"\\[a-zA-Z]+|\$[^$\n]{1,80}\$")
        self._equation = re.compile(r"[\d)] ?[-+*/^=×÷] ?[\d(a-z]")
        self._choice = re.compile(r"^\s*\(?([A-J])[.)]\s*(.*)$", re.MULTILINE)
        self._cap = re.compile(r"[^.!?\n] [A-Z][a-z]")

    @property
    def max_chars(self) -> int:
        return self._max_chars

    def extract(self, text: str) -> PromptFeatures:
        n_chars = len(text)
        head = text[: self._max_chars]
        lower = head.lower()
        tokens = self._token.findall(lower)
        n_tok = len(tokens)
        token_set = frozenset(tokens)
        n_head = max(len(head), 1)

        choices = self._choice.findall(head)
        n_choices = len(choices)
        numeric_choices = sum(1 for _, body in choices if self._number.fullmatch(body.strip()))
        choice_len = sum(len(body) for _, body in choices) / n_choices if n_choices else 0.0
        first_choice = head.find("\nA.")
        question_part = head if first_choice < 0 else head[:first_choice]
        # A long stem before the question (a quoted passage) is a structural signal.
        last_break = question_part.rstrip().rfind("\n")
        passage = max(last_break, 0)

        numbers = self._number.findall(head)
        digits = sum(map(len, numbers))
        q_lower = question_part.lower()

        dense = (
            _log(n_chars),
            _log(n_tok),
            _log(head.count("\n")),
            _log(len(self._sentence.findall(head))),
            (sum(map(len, tokens)) / n_tok) if n_tok else 0.0,
            digits / n_head,
            _log(len(numbers)),
            _log(sum(1 for num in numbers if len(num) >= 4)),
            len(self._math.findall(head)) / n_head * 100.0,
            _log(len(self._latex.findall(head))),
            _log(len(self._equation.findall(head))),
            _log(sum(head.count(marker) for marker in _CODE_MARKERS)),
            float(min(n_choices, 10)),
            numeric_choices / n_choices if n_choices else 0.0,
            _log(choice_len),
            1.0 if "Statement 1" in head else 0.0,
            1.0 if "Scenario 1" in head else 0.0,
            1.0 if any(word in question_part for word in _NEGATIONS) else 0.0,
            1.0 if any(phrase in lower for phrase in _ABOVE) else 0.0,
            1.0 if "which" in q_lower else 0.0,
            1.0 if ("how many" in q_lower or "how much" in q_lower) else 0.0,
            1.0 if ("why" in q_lower or "how " in q_lower) else 0.0,
            _log(head.count("?")),
            _log(len(token_set & _MULTI_STEP)),
            _log(len(token_set & _INSTRUCTIONS)),
            _log(passage),
            _log(head.count('"') + head.count("“")),
            len(self._cap.findall(head)) / n_tok if n_tok else 0.0,
            _log(sum(head.count(m) for m in _MONEY_MARKERS) + len(token_set & _UNITS)),
            *(_log(len(token_set & terms)) for terms in _DOMAINS.values()),
        )
        return PromptFeatures(dense=dense, tokens=token_set)
