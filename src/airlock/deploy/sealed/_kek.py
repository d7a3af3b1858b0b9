"""Key-encryption keys (KEKs): where they come from and how they are identified.

A KEK is 32 bytes. Sources: a key file, an environment variable, or a command whose
stdout is the key (the hook for a KMS / vault CLI). The text forms accepted are base64
(standard or URL-safe), 64 hex digits, or (files only) the 32 raw bytes. ``keygen`` writes
base64 plus a newline with mode 0600.

The KEK id is ``HMAC-SHA256(kek, "airlock-seal/kek-id")`` truncated to 16 bytes: it tells a
wrong key from a tampered file without revealing anything about the key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from airlock.deploy.errors import KeySourceError

__all__ = ["KEK_BYTES", "Kek", "KekSource", "generate_kek_file", "load_kek", "parse_key_text"]

KEK_BYTES = 32
_COMMAND_TIMEOUT_S = 60
_MAX_KEY_TEXT = 4096

SourceKind = Literal["file", "env", "command"]


@dataclass(frozen=True, slots=True)
class KekSource:
    """Where a KEK comes from; recorded (as metadata) in the sealed file's header."""

    kind: SourceKind
    ref: str  # file path, variable name, or command line

    def describe(self) -> str:
        return {"file": "key file", "env": "environment variable", "command": "command"}[
            self.kind
        ] + f" {self.ref!r}"


@dataclass(frozen=True, slots=True, repr=False)
class Kek:
    """A loaded KEK. ``repr`` never shows the key."""

    key: bytes
    source: KekSource

    @property
    def key_id(self) -> str:
        return hmac.new(self.key, b"airlock-seal/kek-id", hashlib.sha256).hexdigest()[:32]

    def __repr__(self) -> str:
        return f"Kek(id={self.key_id}, source={self.source.describe()})"


def parse_key_text(raw: bytes, *, allow_raw: bool) -> bytes:
    """Decode a KEK from its text (or raw) form; :class:`KeySourceError` when it is not
    exactly 32 bytes in one of the accepted encodings."""
    if allow_raw and len(raw) == KEK_BYTES:
        return raw
    text = raw.strip()
    if len(text) > _MAX_KEY_TEXT:
        raise KeySourceError("key material is too long to be a 32-byte key")
    if len(text) == 2 * KEK_BYTES:
        try:
            return bytes.fromhex(text.decode("ascii"))
        except (UnicodeDecodeError, ValueError):
            pass
    for decode in (base64.b64decode, base64.urlsafe_b64decode):
        try:
            key = decode(text + b"=" * (-len(text) % 4))
        except (binascii.Error, ValueError):
            continue
        if len(key) == KEK_BYTES:
            return key
    raise KeySourceError(
        f"key material is not a {KEK_BYTES}-byte key (expected base64, 64 hex digits or raw bytes)"
    )


def load_kek(source: KekSource) -> Kek:
    """Read the KEK from its source. Errors name the source, never the key."""
    if source.kind == "file":
        try:
            raw = Path(source.ref).read_bytes()
        except OSError as exc:
            raise KeySourceError(
                f"cannot read key file {source.ref!r}: {exc.strerror or type(exc).__name__}"
            ) from exc
        return Kek(parse_key_text(raw, allow_raw=True), source)
    if source.kind == "env":
        value = os.environ.get(source.ref)
        if not value:
            raise KeySourceError(f"environment variable {source.ref!r} is not set or empty")
        return Kek(parse_key_text(value.encode("utf-8"), allow_raw=False), source)
    argv = shlex.split(source.ref)
    if not argv:
        raise KeySourceError("key command is empty")
    try:
        done = subprocess.run(
            argv,
            capture_output=True,
            timeout=_COMMAND_TIMEOUT_S,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise KeySourceError(
            f"key command {argv[0]!r} could not run: {type(exc).__name__}"
        ) from exc
    if done.returncode != 0:
        # stderr is not echoed: a KMS tool may print request details we must not log.
        raise KeySourceError(f"key command {argv[0]!r} exited with status {done.returncode}")
    return Kek(parse_key_text(done.stdout, allow_raw=False), source)


def generate_kek_file(path: Path) -> Kek:
    """Write a new random KEK to ``path`` (base64, mode 0600); refuses to overwrite."""
    key = secrets.token_bytes(KEK_BYTES)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise KeySourceError(f"key file {str(path)!r} already exists; not overwriting") from None
    except OSError as exc:
        raise KeySourceError(
            f"cannot create key file {str(path)!r}: {exc.strerror or type(exc).__name__}"
        ) from exc
    with os.fdopen(fd, "wb") as fh:
        fh.write(base64.b64encode(key) + b"\n")
        fh.flush()
        os.fsync(fh.fileno())
    return Kek(key, KekSource("file", str(path)))
