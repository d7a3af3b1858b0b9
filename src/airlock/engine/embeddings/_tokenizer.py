"""The model's WordPiece tokenizer, configured for exact (never truncated) counts.

The packaged ``tokenizer.json`` pads and truncates to 128 tokens; both are switched
off so that token counts are real and over-long inputs can be rejected instead of
silently cut. The tokenizer is configured once here and never mutated afterwards,
which is what makes concurrent ``encode`` calls safe.
"""

from __future__ import annotations

from collections.abc import Sequence

from tokenizers import Tokenizer

__all__ = ["WordPieceTokenizer"]


class WordPieceTokenizer:
    """Text to model token ids, framed as ``[CLS] … [SEP]``."""

    def __init__(self, tokenizer_json: str) -> None:
        tokenizer = Tokenizer.from_str(tokenizer_json)
        tokenizer.no_truncation()
        tokenizer.no_padding()
        self._tokenizer = tokenizer
        self.vocab_size: int = tokenizer.get_vocab_size(with_added_tokens=True)
        self.cls_id: int = _special_id(tokenizer, "[CLS]")
        self.sep_id: int = _special_id(tokenizer, "[SEP]")
        self.pad_id: int = _special_id(tokenizer, "[PAD]")

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids of each text, including the ``[CLS]``/``[SEP]`` frame."""
        encodings = self._tokenizer.encode_batch(list(texts), add_special_tokens=True)
        return [encoding.ids for encoding in encodings]

    def encode_unframed(self, text: str) -> list[int]:
        """Token ids of ``text`` alone: the form callers send as a token-id input."""
        return self._tokenizer.encode(text, add_special_tokens=False).ids

    def frame(self, ids: Sequence[int]) -> list[int]:
        """Wrap caller-supplied ids in ``[CLS] … [SEP]`` as the model expects."""
        return [self.cls_id, *ids, self.sep_id]


def _special_id(tokenizer: Tokenizer, token: str) -> int:
    token_id = tokenizer.token_to_id(token)
    if token_id is None:
        raise ValueError(f"tokenizer has no {token} token")
    return token_id
