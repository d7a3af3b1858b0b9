"""Key-encryption keys from files, environment variables and commands."""

from __future__ import annotations

import base64
import shlex
import stat
import sys
from pathlib import Path

import pytest

from airlock.deploy.errors import KeySourceError
from airlock.deploy.sealed import KEK_BYTES, Kek, KekSource, generate_kek_file, load_kek


def test_keygen_writes_a_private_base64_key_once(tmp_path: Path) -> None:
    kek = generate_kek_file(tmp_path / "k")
    text = (tmp_path / "k").read_bytes()
    assert base64.b64decode(text.strip()) == kek.key
    assert len(kek.key) == KEK_BYTES
    assert stat.S_IMODE((tmp_path / "k").stat().st_mode) == 0o600
    with pytest.raises(KeySourceError, match="already exists"):
        generate_kek_file(tmp_path / "k")
    assert (tmp_path / "k").read_bytes() == text
    assert kek.key.hex() not in repr(kek)
    assert load_kek(KekSource("file", str(tmp_path / "k"))).key_id == kek.key_id


def test_file_env_and_command_sources_agree(
    tmp_path: Path, kek: Kek, monkeypatch: pytest.MonkeyPatch
) -> None:
    raw = tmp_path / "raw"
    raw.write_bytes(kek.key)  # 32 raw bytes are accepted from files
    assert load_kek(KekSource("file", str(raw))).key == kek.key
    monkeypatch.setenv("AIRLOCK_TEST_KEK", kek.key.hex())
    assert load_kek(KekSource("env", "AIRLOCK_TEST_KEK")).key == kek.key
    monkeypatch.setenv("AIRLOCK_TEST_KEK", base64.urlsafe_b64encode(kek.key).decode().rstrip("="))
    assert load_kek(KekSource("env", "AIRLOCK_TEST_KEK")).key == kek.key
    code = f"print({base64.b64encode(kek.key).decode()!r})"
    cmd = f"{shlex.quote(sys.executable)} -c {shlex.quote(code)}"
    from_cmd = load_kek(KekSource("command", cmd))
    assert from_cmd.key == kek.key
    assert from_cmd.key_id == kek.key_id


def test_bad_sources_fail_clearly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(KeySourceError, match="cannot read key file"):
        load_kek(KekSource("file", str(tmp_path / "missing")))
    (tmp_path / "short").write_text(base64.b64encode(b"x" * 16).decode())
    with pytest.raises(KeySourceError, match="not a 32-byte key"):
        load_kek(KekSource("file", str(tmp_path / "short")))
    monkeypatch.delenv("AIRLOCK_NO_SUCH_KEK", raising=False)
    with pytest.raises(KeySourceError, match="is not set"):
        load_kek(KekSource("env", "AIRLOCK_NO_SUCH_KEK"))
    monkeypatch.setenv("AIRLOCK_TEST_KEK", "not a key at all")
    with pytest.raises(KeySourceError, match="not a 32-byte key"):
        load_kek(KekSource("env", "AIRLOCK_TEST_KEK"))
    fail = f"{shlex.quote(sys.executable)} -c 'import sys; sys.exit(3)'"
    with pytest.raises(KeySourceError, match="exited with status 3"):
        load_kek(KekSource("command", fail))
    with pytest.raises(KeySourceError, match="could not run"):
        load_kek(KekSource("command", str(tmp_path / "no-such-binary")))
    with pytest.raises(KeySourceError, match="empty"):
        load_kek(KekSource("command", "   "))
