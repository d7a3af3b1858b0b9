"""Audit key files as operators provide them: plain files and Kubernetes secret mounts."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

__all__ = ["kubernetes_key", "kubernetes_mount", "write_file", "write_key_file"]

# The directory the kubelet writes a secret's files into; ``..data`` points at it.
_STAMP = "..2026_12_01_10_00_00.123456789"


def write_file(path: Path, content: str, mode: int = 0o400) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content, encoding="ascii")
    os.chmod(path, mode)
    return path


def write_key_file(path: Path, mode: int = 0o400) -> str:
    """A fresh 32-byte key in hex at ``path``; returns the hex."""
    hex_key = secrets.token_hex(32)
    write_file(path, hex_key + "\n", mode)
    return hex_key


def kubernetes_mount(mount: Path, content: str, mode: int = 0o400) -> Path:
    """A secret volume as the kubelet lays it out: ``audit.key -> ..data/audit.key``,
    ``..data -> ..<timestamp>``, the real file (with ``defaultMode``) in the latter."""
    write_file(mount / _STAMP / "audit.key", content, mode)
    (mount / "..data").symlink_to(_STAMP)
    (mount / "audit.key").symlink_to("..data/audit.key")
    return mount / "audit.key"


def kubernetes_key(mount: Path, mode: int = 0o400) -> tuple[Path, str]:
    """A fresh key in a Kubernetes-style mount: the path to use and the key's hex."""
    hex_key = secrets.token_hex(32)
    return kubernetes_mount(mount, hex_key + "\n", mode), hex_key
