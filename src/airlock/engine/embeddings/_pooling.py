"""Mean pooling and L2 normalisation, as sentence-transformers does for this model."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

__all__ = ["mean_pool_normalize"]


def mean_pool_normalize(
    hidden: NDArray[np.float32], attention_mask: NDArray[np.int64]
) -> NDArray[np.float32]:
    """Average the hidden states of real (unpadded) tokens, then scale to unit length.

    ``hidden`` is ``(batch, seq, dim)``; the result is ``(batch, dim)`` float32. The
    clamps match sentence-transformers (1e-9 on the token count, 1e-12 on the norm).
    """
    mask = attention_mask.astype(np.float32)[:, :, None]
    summed = (hidden * mask).sum(axis=1)
    counts = np.maximum(mask.sum(axis=1), np.float32(1e-9))
    mean = summed / counts
    norms = np.maximum(np.linalg.norm(mean, axis=1, keepdims=True), np.float32(1e-12))
    normalized: NDArray[np.float32] = (mean / norms).astype(np.float32, copy=False)
    return normalized
