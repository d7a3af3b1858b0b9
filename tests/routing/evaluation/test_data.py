import random
from collections import Counter
from pathlib import Path

import pytest

from airlock.routing.evaluation import (
    DataFileError,
    RoutingRow,
    load_routing_csv,
    prompt_hash,
    split_rows,
)
from tests.routing.synthetic import synthetic_rows, write_csv


def _rows(n: int = 200) -> list[RoutingRow]:
    sources = ["gsm8k", "mmlu/law", "mmlu/math"]
    return [RoutingRow(f"prompt number {i}", i % 2, 1, sources[i % 3]) for i in range(n)]


def test_loads_routellm_csv(tmp_path: Path) -> None:
    rows = load_routing_csv(write_csv(tmp_path / "d.csv", synthetic_rows(10)))
    assert len(rows) == 10
    assert rows[0].family == "gsm8k"
    assert rows[1].family == "mmlu"
    assert {r.weak_correct for r in rows} <= {0, 1}


def test_accepts_true_false_and_missing_source(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text("prompt,weak_correct,strong_correct\nhi,False,True\n", encoding="utf-8")
    (row,) = load_routing_csv(path)
    assert (row.weak_correct, row.strong_correct, row.source) == (0, 1, "unknown")
    assert row.needs_strong == 1


def test_missing_column_is_named(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text("prompt,weak_correct\nhi,1\n", encoding="utf-8")
    with pytest.raises(DataFileError, match="strong_correct"):
        load_routing_csv(path)


def test_bad_flag_names_the_line_but_not_the_prompt(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text(
        "prompt,weak_correct,strong_correct\nok,1,1\nSECRET-PROMPT-TEXT,maybe,1\n",
        encoding="utf-8",
    )
    with pytest.raises(DataFileError) as info:
        load_routing_csv(path)
    assert "line 3" in info.value.message
    assert "weak_correct" in info.value.message
    assert "SECRET" not in str(info.value)


@pytest.mark.parametrize(
    "content", [b"", b"prompt,weak_correct,strong_correct\n", b"prompt,weak_correct,strong\xff\n"]
)
def test_empty_or_undecodable_files_are_rejected(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "d.csv"
    path.write_bytes(content)
    with pytest.raises(DataFileError):
        load_routing_csv(path)


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DataFileError, match="cannot read"):
        load_routing_csv(tmp_path / "nope.csv")


def test_split_is_disjoint_complete_and_stratified() -> None:
    rows = _rows(300)
    train, test = split_rows(rows, "train"), split_rows(rows, "test")
    assert len(train) + len(test) == len(rows)
    assert not {r.prompt for r in train} & {r.prompt for r in test}
    per_source = Counter(r.source for r in rows)
    train_per_source = Counter(r.source for r in train)
    for source, n in per_source.items():
        assert train_per_source[source] == round(0.7 * n)
    assert split_rows(rows, "all") == rows


def test_split_depends_on_prompt_text_only() -> None:
    rows = _rows(150)
    shuffled = rows[:]
    random.Random(3).shuffle(shuffled)
    assert {r.prompt for r in split_rows(rows, "test")} == {
        r.prompt for r in split_rows(shuffled, "test")
    }
    # The rule itself: within a source, the 30% largest hashes are held out.
    gsm = sorted((r.prompt for r in rows if r.source == "gsm8k"), key=prompt_hash)
    held = {r.prompt for r in split_rows(rows, "test") if r.source == "gsm8k"}
    assert held == set(gsm[round(0.7 * len(gsm)) :])


def test_duplicate_prompts_stay_on_one_side() -> None:
    rows = [*_rows(60), *_rows(60)]
    for side in ("train", "test"):
        chosen = split_rows(rows, side)
        counts = Counter(r.prompt for r in chosen)
        assert set(counts.values()) == {2}


def test_train_fraction_is_validated() -> None:
    with pytest.raises(ValueError, match="train_fraction"):
        split_rows(_rows(10), "train", train_fraction=1.0)
