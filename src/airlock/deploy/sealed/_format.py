"""The sealed-file format (version 1).

::

    magic    8 bytes   b"\\x89ALSEAL\\n"
    version  u16 BE    1
    flen     u32 BE    length of the fixed header
    fixed    flen      canonical JSON: alg, chunk_size, salt, size, context
    klen     u32 BE    length of the key block
    keyblock klen      canonical JSON: kek {source, ref, id}, wrap_nonce, wrapped_key
    chunks             ceil(size / chunk_size) records (one empty record when size == 0):
                       AES-256-GCM(body_key, nonce_i, plaintext_i, aad=header_aad) = ct || tag

* ``header_aad`` = magic .. fixed (everything before ``klen``). It is the associated data
  of every chunk, so the algorithm, chunk size, salt, plaintext size and context cannot be
  changed without every chunk failing.
* The key block is separate so a key rotation rewrites it without touching the chunks. The
  random 32-byte data key is wrapped with AES-256-GCM under the KEK with associated data
  ``header_aad || canonical(kek)``: the wrap authenticates the fixed header and the
  recorded KEK metadata too.
* ``HKDF-SHA256(data_key, salt, "airlock-seal/v1/body")`` gives the 32-byte body key and a
  7-byte nonce prefix; ``nonce_i = prefix || u32 BE i || last`` where ``last`` is 1 for the
  final chunk only (so truncation at a chunk boundary and appended chunks fail too).
* ``context`` binds a file to its place in a sealed directory (``dir-id:index``; empty for
  a single file) so blobs cannot be swapped between positions.
"""

from __future__ import annotations

import base64
import json
import struct
from dataclasses import dataclass
from typing import IO, Any, Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from airlock.deploy.errors import SealAuthenticationError, SealFormatError, WrongKeyError
from airlock.deploy.sealed._kek import Kek, KekSource

__all__ = [
    "ALGORITHM",
    "MAGIC",
    "MAX_CHUNK_SIZE",
    "MIN_CHUNK_SIZE",
    "TAG_BYTES",
    "VERSION",
    "BodyKeys",
    "FixedHeader",
    "KeyBlock",
    "SealedHeader",
    "chunk_count",
    "chunk_nonce",
    "derive_body_keys",
    "encode_header",
    "make_key_block",
    "read_header",
    "unwrap_data_key",
]

MAGIC: Final = b"\x89ALSEAL\n"
VERSION: Final = 1
ALGORITHM: Final = "AES-256-GCM"
TAG_BYTES: Final = 16
MIN_CHUNK_SIZE: Final = 4096
MAX_CHUNK_SIZE: Final = 256 * 1024 * 1024
_MAX_HEADER: Final = 64 * 1024
_PREFIX = struct.Struct(">8sHI")
_LEN = struct.Struct(">I")


def _canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode("utf-8")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: object, what: str) -> bytes:
    if not isinstance(text, str):
        raise SealFormatError(f"sealed header field {what} is not a string")
    try:
        return base64.b64decode(text, validate=True)
    except ValueError as exc:
        raise SealFormatError(f"sealed header field {what} is not base64") from exc


@dataclass(frozen=True, slots=True)
class FixedHeader:
    chunk_size: int
    salt: bytes
    size: int
    context: str

    def to_json(self) -> bytes:
        return _canonical(
            {
                "alg": ALGORITHM,
                "chunk_size": self.chunk_size,
                "salt": _b64(self.salt),
                "size": self.size,
                "context": self.context,
            }
        )


@dataclass(frozen=True, slots=True)
class KeyBlock:
    source: KekSource
    kek_id: str
    wrap_nonce: bytes
    wrapped_key: bytes

    def kek_json(self) -> dict[str, str]:
        return {"source": self.source.kind, "ref": self.source.ref, "id": self.kek_id}

    def to_json(self) -> bytes:
        return _canonical(
            {
                "kek": self.kek_json(),
                "wrap_nonce": _b64(self.wrap_nonce),
                "wrapped_key": _b64(self.wrapped_key),
            }
        )


@dataclass(frozen=True, slots=True)
class SealedHeader:
    fixed: FixedHeader
    key_block: KeyBlock
    header_aad: bytes  # magic .. fixed JSON
    body_offset: int


@dataclass(frozen=True, slots=True, repr=False)
class BodyKeys:
    aead: AESGCM
    nonce_prefix: bytes


def chunk_count(size: int, chunk_size: int) -> int:
    return max(1, -(-size // chunk_size))


def chunk_nonce(prefix: bytes, index: int, last: bool) -> bytes:
    return prefix + struct.pack(">IB", index, 1 if last else 0)


def derive_body_keys(data_key: bytes, salt: bytes) -> BodyKeys:
    okm = HKDF(
        algorithm=hashes.SHA256(), length=39, salt=salt, info=b"airlock-seal/v1/body"
    ).derive(data_key)
    return BodyKeys(AESGCM(okm[:32]), okm[32:])


def _wrap_aad(header_aad: bytes, kek_meta: dict[str, str]) -> bytes:
    return header_aad + _canonical(kek_meta)


def make_key_block(header_aad: bytes, data_key: bytes, kek: Kek, nonce: bytes) -> KeyBlock:
    meta = {"source": kek.source.kind, "ref": kek.source.ref, "id": kek.key_id}
    wrapped = AESGCM(kek.key).encrypt(nonce, data_key, _wrap_aad(header_aad, meta))
    return KeyBlock(kek.source, kek.key_id, nonce, wrapped)


def unwrap_data_key(header: SealedHeader, kek: Kek) -> bytes:
    """The file's data key; :class:`WrongKeyError` when ``kek`` is not the file's KEK,
    :class:`SealAuthenticationError` when the header or key block was modified."""
    block = header.key_block
    try:
        return AESGCM(kek.key).decrypt(
            block.wrap_nonce, block.wrapped_key, _wrap_aad(header.header_aad, block.kek_json())
        )
    except InvalidTag:
        if block.kek_id != kek.key_id:
            raise WrongKeyError(
                f"wrong key: the file was sealed under KEK id {block.kek_id} "
                f"({block.source.describe()}), the key given has id {kek.key_id}"
            ) from None
        raise SealAuthenticationError(
            "the sealed header failed authentication: it was modified or corrupted"
        ) from None


def encode_header(fixed: FixedHeader, key_block: KeyBlock | None) -> tuple[bytes, bytes]:
    """``(header_aad, full_header)``; ``key_block=None`` gives only the AAD part."""
    fixed_json = fixed.to_json()
    aad = _PREFIX.pack(MAGIC, VERSION, len(fixed_json)) + fixed_json
    if key_block is None:
        return aad, aad
    kb = key_block.to_json()
    return aad, aad + _LEN.pack(len(kb)) + kb


def _read_exact(fh: IO[bytes], n: int, what: str) -> bytes:
    data = fh.read(n)
    if len(data) != n:
        raise SealFormatError(f"not a sealed file: it ends inside the {what}")
    return data


def _parse_fixed(raw: bytes) -> FixedHeader:
    try:
        obj = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SealFormatError("sealed header is not valid JSON (corrupted)") from exc
    if not isinstance(obj, dict) or raw != _canonical(obj):
        raise SealFormatError("sealed header is not in canonical form (corrupted)")
    if obj.get("alg") != ALGORITHM:
        raise SealFormatError(f"unsupported sealing algorithm {obj.get('alg')!r}")
    chunk, size, context = obj.get("chunk_size"), obj.get("size"), obj.get("context")
    if not isinstance(chunk, int) or not MIN_CHUNK_SIZE <= chunk <= MAX_CHUNK_SIZE:
        raise SealFormatError("sealed header has an invalid chunk size")
    if not isinstance(size, int) or size < 0:
        raise SealFormatError("sealed header has an invalid size")
    if not isinstance(context, str):
        raise SealFormatError("sealed header has an invalid context")
    salt = _unb64(obj.get("salt"), "salt")
    if len(salt) != 32:
        raise SealFormatError("sealed header has an invalid salt")
    return FixedHeader(chunk, salt, size, context)


def _parse_key_block(raw: bytes) -> KeyBlock:
    try:
        obj = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SealFormatError("sealed key block is not valid JSON (corrupted)") from exc
    kek = obj.get("kek") if isinstance(obj, dict) else None
    if not isinstance(kek, dict):
        raise SealFormatError("sealed key block has no KEK record")
    kind, ref, kek_id = kek.get("source"), kek.get("ref"), kek.get("id")
    if kind not in ("file", "env", "command") or not isinstance(ref, str):
        raise SealFormatError("sealed key block has an invalid KEK source")
    if not isinstance(kek_id, str):
        raise SealFormatError("sealed key block has an invalid KEK id")
    nonce = _unb64(obj.get("wrap_nonce"), "wrap_nonce")
    wrapped = _unb64(obj.get("wrapped_key"), "wrapped_key")
    if len(nonce) != 12 or len(wrapped) != 32 + TAG_BYTES:
        raise SealFormatError("sealed key block has an invalid wrapped key")
    return KeyBlock(KekSource(kind, ref), kek_id, nonce, wrapped)


def read_header(fh: IO[bytes]) -> SealedHeader:
    """Parse the header at the current position (the start of the file)."""
    magic, version, flen = _PREFIX.unpack(_read_exact(fh, _PREFIX.size, "header"))
    if magic != MAGIC:
        raise SealFormatError("not a sealed file (bad magic)")
    if version != VERSION:
        raise SealFormatError(f"unsupported sealed-file version {version}")
    if not 0 < flen <= _MAX_HEADER:
        raise SealFormatError("sealed header has an invalid length")
    fixed_raw = _read_exact(fh, flen, "header")
    fixed = _parse_fixed(fixed_raw)
    (klen,) = _LEN.unpack(_read_exact(fh, _LEN.size, "key block"))
    if not 0 < klen <= _MAX_HEADER:
        raise SealFormatError("sealed key block has an invalid length")
    key_block = _parse_key_block(_read_exact(fh, klen, "key block"))
    aad = _PREFIX.pack(magic, version, flen) + fixed_raw
    return SealedHeader(fixed, key_block, aad, len(aad) + _LEN.size + klen)
