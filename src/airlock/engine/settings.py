"""Settings of the embedded llama.cpp engine (built once, from airlock's config)."""

from __future__ import annotations

import os
from dataclasses import dataclass

__all__ = ["EngineSettings"]


@dataclass(frozen=True, slots=True)
class EngineSettings:
    """``n_ctx`` 0 means the model's training context.

    ``n_threads`` None means all cores but one (at least one): llama.cpp's threads meet at a
    barrier after every layer, so when one of them loses its core to the HTTP server's
    event loop a whole token stalls. Measured on 2 shared cores: 1 thread decodes a steady
    ~75 tokens/s, 2 threads ~120 tokens/s when idle but stall for seconds under load.
    """

    model_id: str = "smollm2"
    n_ctx: int = 0
    n_threads: int | None = None
    n_batch: int = 512
    max_queued_jobs: int = 256

    def __post_init__(self) -> None:
        if self.n_ctx < 0:
            raise ValueError("n_ctx must be >= 0 (0 = the model's training context)")
        if self.n_threads is not None and self.n_threads < 1:
            raise ValueError("n_threads must be >= 1")
        if self.n_batch < 1:
            raise ValueError("n_batch must be >= 1")
        if self.max_queued_jobs < 1:
            raise ValueError("max_queued_jobs must be >= 1")

    def threads(self) -> int:
        return self.n_threads or max(1, (os.cpu_count() or 1) - 1)
