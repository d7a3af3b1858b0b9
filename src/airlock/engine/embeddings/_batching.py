"""Grouping inputs into padded batches.

Inputs are sorted by length so each batch pads only to its own longest member, and
batches are capped by padded token count so memory (attention is quadratic in the
sequence length) stays bounded however many inputs a request carries.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

__all__ = ["pad_batch", "plan_batches"]


def plan_batches(
    lengths: Sequence[int], *, max_batch_size: int, max_batch_tokens: int
) -> list[list[int]]:
    """Indices of ``lengths`` grouped into batches, longest first.

    Each batch has at most ``max_batch_size`` members and, padded to its longest
    member, at most ``max_batch_tokens`` tokens (a single input longer than that still
    gets a batch of its own).
    """
    if max_batch_size < 1 or max_batch_tokens < 1:
        raise ValueError("batch limits must be positive")
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches: list[list[int]] = []
    current: list[int] = []
    for index in order:
        # Sorted longest first, so the batch's padded length is its first member's.
        width = lengths[current[0]] if current else lengths[index]
        if current and (
            len(current) >= max_batch_size or (len(current) + 1) * width > max_batch_tokens
        ):
            batches.append(current)
            current = []
        current.append(index)
    if current:
        batches.append(current)
    return batches


def pad_batch(
    sequences: Sequence[Sequence[int]], pad_id: int
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Right-pad ``sequences`` to the longest one; return ``(input_ids, attention_mask)``."""
    width = max(len(s) for s in sequences)
    input_ids = np.full((len(sequences), width), pad_id, dtype=np.int64)
    attention_mask = np.zeros((len(sequences), width), dtype=np.int64)
    for row, sequence in enumerate(sequences):
        input_ids[row, : len(sequence)] = sequence
        attention_mask[row, : len(sequence)] = 1
    return input_ids, attention_mask
