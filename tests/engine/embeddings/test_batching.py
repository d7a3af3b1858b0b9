"""Batch planning and padding."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from airlock.engine.embeddings._batching import pad_batch, plan_batches


@given(
    lengths=st.lists(st.integers(min_value=1, max_value=300), max_size=80),
    max_batch_size=st.integers(min_value=1, max_value=40),
    max_batch_tokens=st.integers(min_value=1, max_value=5000),
)
def test_plan_covers_every_input_once_within_limits(
    lengths: list[int], max_batch_size: int, max_batch_tokens: int
) -> None:
    batches = plan_batches(
        lengths, max_batch_size=max_batch_size, max_batch_tokens=max_batch_tokens
    )
    assert sorted(i for batch in batches for i in batch) == list(range(len(lengths)))
    for batch in batches:
        assert 1 <= len(batch) <= max_batch_size
        padded = len(batch) * max(lengths[i] for i in batch)
        assert padded <= max_batch_tokens or len(batch) == 1


def test_plan_groups_similar_lengths_together() -> None:
    lengths = [5, 200, 6, 190, 4, 210]
    batches = plan_batches(lengths, max_batch_size=3, max_batch_tokens=10_000)
    assert [sorted(lengths[i] for i in b) for b in batches] == [[190, 200, 210], [4, 5, 6]]


def test_plan_rejects_non_positive_limits() -> None:
    with pytest.raises(ValueError, match="positive"):
        plan_batches([1], max_batch_size=0, max_batch_tokens=10)
    with pytest.raises(ValueError, match="positive"):
        plan_batches([1], max_batch_size=1, max_batch_tokens=0)


def test_pad_batch_right_pads_with_mask() -> None:
    ids, mask = pad_batch([[101, 7, 102], [101, 102]], pad_id=0)
    np.testing.assert_array_equal(ids, [[101, 7, 102], [101, 102, 0]])
    np.testing.assert_array_equal(mask, [[1, 1, 1], [1, 1, 0]])
    assert ids.dtype == np.int64
    assert mask.dtype == np.int64
