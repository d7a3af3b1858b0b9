import csv
from pathlib import Path

import pytest

from airlock.routing.scorer import (
    COMPLEX_FLOOR,
    SIMPLE_CEILING,
    ComplexityScorer,
    InstructionRules,
    RuleMatch,
)
from airlock.routing.scorer._rules import apply_rule

FREE_FORM_SET = Path(__file__).resolve().parents[1] / "data" / "free_form.csv"


@pytest.fixture(scope="module")
def rules() -> InstructionRules:
    return InstructionRules()


@pytest.mark.parametrize(
    ("prompt", "label"),
    [
        ("hi", "simple:greeting"),
        ("Thanks, that helped!", "simple:greeting"),
        ("Summarize the following:\n\nThe plant closes at 6pm on Fridays.", "simple:summarise"),
        ("Extract the invoice date: INV-7 dated 3 May 2024.", "simple:extract"),
        ("List the names mentioned here: Ann met Bob in Oslo.", "simple:extract"),
        ("Classify this review as positive or negative: awful service.", "simple:classify"),
        ("Translate to German: good night", "simple:translate"),
        ("Rewrite this more politely: send it now", "simple:rewrite"),
        ("Convert this to JSON: a=1, b=2", "simple:rewrite"),
        ("Who painted the Mona Lisa?", "simple:short_request"),
        ("Prove that every finite group of prime order is cyclic.", "complex:proof"),
        ("Implement a trie in Python with insert and prefix search.", "complex:code"),
        ("```\nint main() { return 0; }\n```\nWhat does it print?", "complex:code"),
        ("Compute the integral of sin(x)^2 from 0 to pi.", "complex:maths"),
        ("Design a schema for a multi-tenant billing system.", "complex:analysis"),
        ("Explain step by step how TLS 1.3 resumption works.", "complex:analysis"),
        # Complex wins over simple: the hard part decides.
        ("Summarise this argument and prove where it fails: all primes are odd.", "complex:proof"),
    ],
)
def test_rules_recognise_instruction_types(
    rules: InstructionRules, prompt: str, label: str
) -> None:
    match = rules.match(prompt)
    assert match is not None
    assert match.label == label


@pytest.mark.parametrize(
    "prompt",
    [
        # GSM8K-style word problems are the learned model's business.
        "Natalia sold clips to 48 of her friends in April, and then she sold half as many "
        "clips in May. How many clips did Natalia sell altogether in April and May?",
        "What is 12 + 7?",
        "Why is the sky blue?",  # asks for an argument: not a short lookup
        "Carol and Jennifer compare the signatures they collected: 20 and 44. How many more?",
    ],
)
def test_rules_leave_other_prompts_to_the_model(rules: InstructionRules, prompt: str) -> None:
    assert rules.match(prompt) is None


def test_rules_read_the_instruction_not_a_pasted_document(rules: InstructionRules) -> None:
    filler = "Lorem ipsum dolor sit amet. " * 200
    # The instruction may come first or last; both are read.
    assert rules.match(f"Summarise the text below.\n{filler}") == RuleMatch("simple", "summarise")
    assert rules.match(f"{filler}\nTranslate the above into French.") == RuleMatch(
        "simple", "translate"
    )
    # A trigger word deep inside the document is not an instruction.
    assert rules.match(f"{filler} prove {filler}") is None


def test_apply_rule_keeps_the_order_inside_each_band() -> None:
    simple, hard = RuleMatch("simple", "x"), RuleMatch("complex", "y")
    assert apply_rule(0.4, None) == 0.4
    assert apply_rule(0.0, simple) == 0.0
    assert apply_rule(1.0, simple) == SIMPLE_CEILING
    assert apply_rule(0.2, simple) < apply_rule(0.3, simple)
    assert apply_rule(0.0, hard) == COMPLEX_FLOOR
    assert apply_rule(1.0, hard) == 1.0
    assert apply_rule(0.2, hard) < apply_rule(0.3, hard)


def test_packaged_scorer_on_the_labelled_free_form_set() -> None:
    """The hand-labelled chat prompts (docs/router.md): share sent strong and agreement.

    Before per-family ranks and rules, the default strong_share 0.3 sent 100% of these
    to the strong model (agreement 41%); the bounds leave room for retraining noise.
    """
    with FREE_FORM_SET.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) >= 60
    assert {r["expected"] for r in rows} == {"weak", "strong"}
    assert all(r["rationale"].strip() for r in rows)
    scorer = ComplexityScorer.load()
    threshold = scorer.threshold_for_strong_share(0.3)
    strong = [scorer.score(r["prompt"]) >= threshold for r in rows]
    agree = sum(s == (r["expected"] == "strong") for s, r in zip(strong, rows, strict=True))
    assert agree / len(rows) >= 0.85
    assert 0.2 <= sum(strong) / len(rows) <= 0.5
    simple = [s for s, r in zip(strong, rows, strict=True) if r["expected"] == "weak"]
    assert sum(simple) <= 1  # simple requests stay self-hosted


def test_trigger_word_filter_changes_no_result(rules: InstructionRules) -> None:
    # The filter only skips regexes that cannot match; compare with running them all.
    with FREE_FORM_SET.open(encoding="utf-8", newline="") as handle:
        prompts = [r["prompt"] for r in csv.DictReader(handle)]
    prompts += [
        "Carol and Jennifer compare the signatures they collected: 20 and 44. How many more?",
        "Give it as JSON please: the list of colours",
        "Fix the typos: teh cat",
        "TL;DR of the thread above, please",
        "Show your work: 17 * 23",
        '#include <stdio.h>\nint main(void) { puts("x"); }',
    ]
    for prompt in prompts:
        assert rules.match(prompt) == rules._match(prompt, filtered=False)
