"""Shared fixtures: the real SmolLM2 model, loaded once per test session."""

from __future__ import annotations

import asyncio
import ctypes
from collections.abc import Iterator

import llama_cpp
import pytest

from airlock.engine.llama_engine import EmbeddedEngine
from airlock.engine.llama_model import LlamaModel
from airlock.engine.model_files import smollm2_gguf
from airlock.engine.scheduler import JobReport
from airlock.engine.settings import EngineSettings


@pytest.fixture(scope="session")
def llama_model() -> Iterator[LlamaModel]:
    """The model without a worker: tokenizer, template and grammar checks."""
    model = LlamaModel(smollm2_gguf(), EngineSettings(n_ctx=512, n_threads=1))
    yield model
    model.close()


@pytest.fixture(scope="session")
def job_reports() -> list[JobReport]:
    return []


@pytest.fixture(scope="session")
def engine(job_reports: list[JobReport]) -> Iterator[EmbeddedEngine]:
    eng = EmbeddedEngine(
        smollm2_gguf(), EngineSettings(n_ctx=2048, n_threads=1), on_job_report=job_reports.append
    )
    asyncio.run(eng.start())
    yield eng
    asyncio.run(eng.aclose())


def grammar_accepts(model: LlamaModel, grammar: str, text: str, *, complete: bool = True) -> bool:
    """Whether llama.cpp's grammar lets the model write exactly ``text`` (and then stop)."""
    sampler = llama_cpp.llama_sampler_init_grammar(model.vocab, grammar.encode(), b"root")
    assert sampler, "llama.cpp rejected the grammar"
    try:
        ending = [model.eos_token] if complete else []
        for token in [*model.tokenize(text, add_bos=False), *ending]:
            data = (llama_cpp.llama_token_data * 1)(llama_cpp.llama_token_data(token, 0.0, 0.0))
            array = llama_cpp.llama_token_data_array(data, 1, -1, False)
            llama_cpp.llama_sampler_apply(sampler, ctypes.byref(array))
            if data[0].logit == float("-inf"):
                return False
            if token != model.eos_token:
                llama_cpp.llama_sampler_accept(sampler, token)
        return True
    finally:
        llama_cpp.llama_sampler_free(sampler)


@pytest.fixture(scope="session")
def tmp_engine_small() -> Iterator[EmbeddedEngine]:
    """A 96-token window, to reach its end quickly."""
    eng = EmbeddedEngine(smollm2_gguf(), EngineSettings(n_ctx=96, n_threads=1))
    asyncio.run(eng.start())
    yield eng
    asyncio.run(eng.aclose())
