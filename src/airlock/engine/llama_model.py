"""One loaded GGUF model and its llama.cpp context: tokenizer, template, evaluation.

All llama.cpp state lives here. Tokenizing and reading the piece table are safe from any
thread (they only read the vocabulary); :meth:`eval`, :meth:`load_prompt` and sampling
must only run on the engine's worker thread, which owns the context.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import llama_cpp

from airlock.engine.chat_template import CHATML_TEMPLATE, ChatTemplate
from airlock.engine.settings import EngineSettings
from airlock.errors import BadRequestError, ServiceUnavailableError

__all__ = ["LlamaModel"]


class LlamaModel:
    def __init__(self, path: Path, settings: EngineSettings) -> None:
        if not path.is_file():
            raise ServiceUnavailableError(f"Model file {path.name} does not exist.")
        try:
            self._llama = llama_cpp.Llama(
                model_path=str(path),
                n_ctx=settings.n_ctx,
                n_threads=settings.threads(),
                n_threads_batch=settings.threads(),
                n_batch=settings.n_batch,
                logits_all=False,
                verbose=False,
            )
        except ValueError as exc:
            raise ServiceUnavailableError(f"Model file {path.name} could not be loaded.") from exc
        self.n_ctx: int = self._llama.n_ctx()
        self.n_vocab: int = self._llama.n_vocab()
        self.n_batch = settings.n_batch
        self.vocab: Any = self._llama._model.vocab
        self.ctx: Any = self._llama._ctx.ctx
        self._pieces = [self._piece(t) for t in range(self.n_vocab)]
        self._eog = frozenset(
            t for t in range(self.n_vocab) if llama_cpp.llama_vocab_is_eog(self.vocab, t)
        )
        self.bos_token: int = max(self._llama.token_bos(), 0)
        self.eos_token: int = self._llama.token_eos()
        metadata = self._llama.metadata
        self.add_bos = metadata.get("tokenizer.ggml.add_bos_token", "false") == "true"
        self.template = ChatTemplate(
            metadata.get("tokenizer.chat_template") or CHATML_TEMPLATE,
            bos_token=self._special_text(self._llama.token_bos()),
            eos_token=self._special_text(self._llama.token_eos()),
        )

    def _special_text(self, token: int) -> str:
        if token < 0:
            return ""
        return self._llama.detokenize([token], special=True).decode("utf-8", errors="replace")

    def _piece(self, token: int) -> bytes:
        buf = ctypes.create_string_buffer(64)
        n = llama_cpp.llama_token_to_piece(self.vocab, token, buf, len(buf), 0, False)
        if n < 0:
            buf = ctypes.create_string_buffer(-n)
            n = llama_cpp.llama_token_to_piece(self.vocab, token, buf, len(buf), 0, False)
        return buf.raw[: max(n, 0)]

    # --- vocabulary (any thread) -------------------------------------------------------

    def tokenize(self, text: str, *, add_bos: bool | None = None) -> list[int]:
        """Token ids of ``text``; special tokens written in the text are parsed as such."""
        bos = self.add_bos if add_bos is None else add_bos
        try:
            return list(self._llama.tokenize(text.encode("utf-8"), add_bos=bos, special=True))
        except RuntimeError:
            # llama-cpp-python's message quotes the text: never let it out (invariant 1).
            raise BadRequestError("The input could not be tokenized.") from None

    def piece(self, token: int) -> bytes:
        """The bytes a generated token stands for (control tokens are empty)."""
        return self._pieces[token]

    def is_eog(self, token: int) -> bool:
        return token in self._eog

    def detokenize(self, tokens: Sequence[int]) -> str:
        return b"".join(self._pieces[t] for t in tokens).decode("utf-8", errors="replace")

    # --- evaluation (worker thread only) -----------------------------------------------

    @property
    def n_past(self) -> int:
        return int(self._llama.n_tokens)

    def truncate(self, n_tokens: int) -> None:
        """Forget everything after the first ``n_tokens`` positions."""
        self._llama.n_tokens = n_tokens

    def eval(
        self, tokens: Sequence[int], *, before_decode: Callable[[], None] | None = None
    ) -> None:
        """Evaluate ``tokens`` (at most one batch when ``before_decode`` is given).

        ``before_decode`` runs right before ``llama_decode``, after the last other
        GIL-releasing call. The scheduler wakes the event loop there: the loop's per-token
        burst then runs while decode holds no GIL. Woken earlier, the loop takes the GIL at
        the worker's next small ctypes call (``Llama.eval`` trims the KV cache first) and
        the worker waits out the whole burst before it can start decoding.
        """
        llama = self._llama
        if before_decode is None or len(tokens) > self.n_batch:
            if before_decode is not None:
                before_decode()
            llama.eval(tokens)
            return
        # Llama.eval's body for one batch without logits_all (what this class loads).
        n_past = llama.n_tokens
        llama._ctx.kv_cache_seq_rm(-1, n_past, -1)
        llama._batch.set_batch(batch=tokens, n_past=n_past, logits_all=False)
        before_decode()
        llama._ctx.decode(llama._batch)
        llama.input_ids[n_past : n_past + len(tokens)] = tokens
        llama.n_tokens += len(tokens)

    def load_prompt(
        self, tokens: Sequence[int], cancelled: Callable[[], bool], *, reuse_prefix: bool = True
    ) -> bool:
        """Evaluate a prompt, reusing the cached prefix; False if cancelled part-way.

        ``reuse_prefix=False`` evaluates it from position 0 in the same batches every
        time, for requests that must be repeatable. A reused prefix was computed in other
        batches (generated tokens one at a time), and llama.cpp's kernels for a batch of
        one and for a large batch round differently: logits move by up to about 1, enough
        to change a greedy choice or a seeded draw a few tokens later.
        """
        common = 0
        if reuse_prefix:
            cached = self._llama.input_ids[: self.n_past].tolist()
            for a, b in zip(cached, tokens, strict=False):
                if a != b:
                    break
                common += 1
        # Re-evaluate at least the last prompt token: its logits are what we sample from.
        common = min(common, len(tokens) - 1)
        self.truncate(common)
        for start in range(common, len(tokens), self.n_batch):
            if cancelled():
                return False
            self.eval(tokens[start : start + self.n_batch])
        return True

    def close(self) -> None:
        self._llama.close()
