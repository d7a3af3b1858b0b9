import math

import pytest

from airlock.routing.scorer import DENSE_FEATURES, FeatureExtractor

MC = "Which is prime?\nA. 4\nB. 6\nC. 7\nD. 9\nAnswer:"


def _f(text: str, max_chars: int = 6000) -> dict[str, float]:
    return dict(zip(DENSE_FEATURES, FeatureExtractor(max_chars).extract(text).dense, strict=True))


def test_every_feature_is_named_and_finite() -> None:
    for text in ["", " ", "hi", MC, "∫ x² dx = ?", "\x00\x01\n\n", "Ω" * 10_000]:
        features = FeatureExtractor().extract(text)
        assert len(features.dense) == len(DENSE_FEATURES)
        assert all(math.isfinite(v) for v in features.dense)


def test_multiple_choice_structure() -> None:
    f = _f(MC)
    assert f["mc_choices"] == 4
    assert f["mc_numeric_choices"] == 1.0
    assert FeatureExtractor().extract(MC).segment == "multiple_choice"
    assert FeatureExtractor().extract("What is 2 + 2?").segment == "free_form"
    assert _f("Statement 1 | A group is a ring.")["statement_pair"] == 1.0
    assert _f("Scenario 1 | I took the money.")["scenario_pair"] == 1.0
    assert _f("Which of these is NOT a mammal?\nA. cat\nB. eel")["negated_question"] == 1.0
    assert _f("Which is not a mammal?\nA. cat\nB. eel")["negated_question"] == 0.0


def test_maths_and_numbers() -> None:
    plain, maths = _f("Tell me about the weather"), _f("Solve 3x^2 + 4 = 16 for x; 1234 + 5")
    assert maths["digit_ratio"] > plain["digit_ratio"] == 0.0
    assert maths["log_numbers"] == pytest.approx(math.log1p(6))  # 3 2 4 16 1234 5
    assert maths["big_numbers"] == pytest.approx(math.log1p(1))
    assert maths["equations"] > 0 == plain["equations"]
    assert maths["math_symbols"] > 0 == plain["math_symbols"]


def test_code_multi_step_instructions_and_domains() -> None:
    code = _f("```python\ndef f(x):\n    return x == 1\n```")
    assert code["code"] >= math.log1p(4)
    steps = _f("First add 3, then double it; after that take half of the rest in total.")
    assert steps["multi_step_terms"] == pytest.approx(math.log1p(6))
    assert _f("Explain and compare the two proofs")["instruction_verbs"] == pytest.approx(
        math.log1p(2)
    )
    law = _f("The plaintiff sued the defendant for breach of contract in court.")
    assert law["domain_law"] == pytest.approx(math.log1p(5))
    assert law["domain_medicine"] == 0.0
    how = _f("How many apples are left?")
    assert how["how_many_question"] == 1.0
    assert how["question_marks"] == pytest.approx(math.log1p(1))


def test_length_counts_the_whole_prompt_but_patterns_only_the_head() -> None:
    text = "word " * 100 + "123 " * 100
    f = _f(text, max_chars=500)
    assert f["log_chars"] == pytest.approx(math.log1p(len(text)))
    assert f["log_numbers"] == 0.0  # the numbers start after the first 500 characters
    assert _f(text)["log_numbers"] == pytest.approx(math.log1p(100))


def test_extraction_is_deterministic() -> None:
    extractor = FeatureExtractor()
    assert extractor.extract(MC) == extractor.extract(MC)


def test_max_chars_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_chars"):
        FeatureExtractor(0)
