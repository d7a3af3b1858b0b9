"""The audit key: a configured file (``AIRLOCK_AUDIT_KEY_FILE``) or ``home/audit.key``.

A configured file must already exist (it is never created), symlinks to it are followed
the way Kubernetes lays out a secret volume, and the file they end at must still be
private. Without it, ``home/audit.key`` is created 0600 on first use, as before. Every
file here is real; no error message may hold the key.
"""

from __future__ import annotations

import os
import secrets
import stat
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from airlock.ledger.record import RequestRecord
from airlock.privacy.audit import AuditKeyError, AuditTrail, load_audit_key, verify_db
from airlock.privacy.audit.key import KEY_FILE_ENV, load_configured_key, load_key
from tests.support.audit_keys import kubernetes_mount, write_file


def _message(exc: pytest.ExceptionInfo[AuditKeyError], hex_key: str) -> str:
    text = str(exc.value)
    assert hex_key not in text
    assert hex_key[:16] not in text
    return text


def test_a_configured_file_is_used_and_no_home_key_is_made(tmp_path: Path) -> None:
    hex_key = secrets.token_hex(32)
    key_file = write_file(tmp_path / "secrets" / "audit.key", hex_key + "\n")
    home = tmp_path / "home"
    assert load_audit_key(home, key_file) == bytes.fromhex(hex_key)
    assert not home.exists()


def test_a_kubernetes_secret_mount_is_followed(tmp_path: Path) -> None:
    hex_key = secrets.token_hex(32)
    path = kubernetes_mount(tmp_path / "etc-airlock", hex_key)
    assert path.is_symlink()
    assert load_audit_key(tmp_path / "home", path) == bytes.fromhex(hex_key)
    # The kubelet updates a secret by pointing ``..data`` at a new directory: the path
    # is resolved on each load, so the new file is the one read.
    new_hex = secrets.token_hex(32)
    write_file(tmp_path / "etc-airlock" / "..2026_12_02_10_00_00.1" / "audit.key", new_hex)
    swap = tmp_path / "etc-airlock" / "..data_tmp"
    swap.symlink_to("..2026_12_02_10_00_00.1")
    os.replace(swap, tmp_path / "etc-airlock" / "..data")
    assert load_audit_key(tmp_path / "home", path) == bytes.fromhex(new_hex)


def test_a_relative_configured_path_is_resolved_from_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hex_key = secrets.token_hex(32)
    write_file(tmp_path / "keys" / "audit.key", hex_key, 0o600)
    monkeypatch.chdir(tmp_path)
    assert load_configured_key(Path("keys/audit.key")) == bytes.fromhex(hex_key)


def test_a_missing_configured_file_is_an_error_and_nothing_is_created(tmp_path: Path) -> None:
    home = tmp_path / "home"
    missing = tmp_path / "secrets" / "audit.key"
    with pytest.raises(AuditKeyError) as exc:
        load_audit_key(home, missing)
    text = str(exc.value)
    assert KEY_FILE_ENV in text
    assert str(missing) in text
    assert "never created" in text
    assert not missing.exists()
    assert not missing.parent.exists()
    assert not home.exists()


def test_a_dangling_kubernetes_mount_is_an_error(tmp_path: Path) -> None:
    path = kubernetes_mount(tmp_path / "etc-airlock", secrets.token_hex(32))
    (tmp_path / "etc-airlock" / "..data").unlink()
    with pytest.raises(AuditKeyError, match="does not exist") as exc:
        load_audit_key(tmp_path / "home", path)
    assert KEY_FILE_ENV in str(exc.value)
    assert not (tmp_path / "etc-airlock" / "..data").exists()
    assert not (tmp_path / "home").exists()


@pytest.mark.parametrize("mode", [0o404, 0o444, 0o604, 0o420, 0o460, 0o410, 0o450])
def test_a_configured_file_others_can_reach_is_refused(tmp_path: Path, mode: int) -> None:
    hex_key = secrets.token_hex(32)
    key_file = write_file(tmp_path / "audit.key", hex_key, mode)
    with pytest.raises(AuditKeyError) as exc:
        load_audit_key(tmp_path / "home", key_file)
    text = _message(exc, hex_key)
    assert "group or others" in text
    assert KEY_FILE_ENV in text
    assert "defaultMode: 0400" in text


@pytest.mark.parametrize("mode", [0o400, 0o600, 0o440, 0o640])
def test_a_private_configured_file_is_accepted(tmp_path: Path, mode: int) -> None:
    # Group read passes only because the file's group (ours, as created) is our own.
    hex_key = secrets.token_hex(32)
    key_file = write_file(tmp_path / "audit.key", hex_key, mode)
    assert os.stat(key_file).st_gid == os.getegid()
    assert load_configured_key(key_file) == bytes.fromhex(hex_key)


def test_group_read_by_a_group_the_process_is_not_in_is_refused(tmp_path: Path) -> None:
    hex_key = secrets.token_hex(32)
    key_file = write_file(tmp_path / "audit.key", hex_key, 0o440)
    foreign = max([os.getegid(), *os.getgroups()]) + 1000
    try:
        os.chown(key_file, -1, foreign)
    except PermissionError:
        pytest.skip("changing a file's group to a foreign one needs root")
    with pytest.raises(AuditKeyError) as exc:
        load_configured_key(key_file)
    assert "group or others" in _message(exc, hex_key)
    # The default home key never accepts group read, whatever the group.
    home = tmp_path / "home"
    home.mkdir()
    write_file(home / "audit.key", hex_key, 0o440)
    with pytest.raises(AuditKeyError, match="group or others"):
        load_audit_key(home, None)


def test_a_kubernetes_fsgroup_mount_works_and_others_read_is_refused(tmp_path: Path) -> None:
    hex_key = secrets.token_hex(32)
    # What the kubelet makes of ``defaultMode: 0400`` when the pod sets ``fsGroup``.
    path = kubernetes_mount(tmp_path / "etc-airlock", hex_key, 0o440)
    assert load_audit_key(tmp_path / "home", path) == bytes.fromhex(hex_key)
    path = kubernetes_mount(tmp_path / "etc-open", hex_key, 0o444)
    with pytest.raises(AuditKeyError) as exc:
        load_audit_key(tmp_path / "home", path)
    text = _message(exc, hex_key)
    assert "group or others" in text
    # The message names the file whose mode is wrong, not only the link.
    assert str(path.resolve()) in text
    # A private link (links have no mode of their own on Linux) changes nothing.
    link = tmp_path / "private-link"
    link.symlink_to(write_file(tmp_path / "shared.key", hex_key, 0o644))
    with pytest.raises(AuditKeyError, match="group or others"):
        load_configured_key(link)


def test_a_symlink_loop_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    with pytest.raises(AuditKeyError, match="cannot be resolved") as exc:
        load_configured_key(tmp_path / "a")
    assert KEY_FILE_ENV in str(exc.value)


def test_a_directory_is_not_a_key_file(tmp_path: Path) -> None:
    directory = tmp_path / "keys"
    directory.mkdir(mode=0o700)
    with pytest.raises(AuditKeyError, match="not a regular file"):
        load_configured_key(directory)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not hex at all: " + "cd" * 32, "not hex"),
        ("ef" * 16, "fewer than 32 bytes"),
        ("", "fewer than 32 bytes"),
    ],
)
def test_a_malformed_configured_file_is_refused_without_showing_it(
    tmp_path: Path, content: str, message: str
) -> None:
    key_file = write_file(tmp_path / "audit.key", content)
    with pytest.raises(AuditKeyError, match=message) as exc:
        load_configured_key(key_file)
    if content:
        assert content not in str(exc.value)
        assert content[-16:] not in str(exc.value)


def test_without_a_configured_file_home_key_is_created_private_and_reused(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    key = load_audit_key(home, None)
    assert len(key) == 32
    assert stat.S_IMODE((home / "audit.key").stat().st_mode) == 0o600
    assert load_audit_key(home, None) == key
    assert load_audit_key(home, None, create=False) == key


def test_without_a_configured_file_reading_only_creates_nothing(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with pytest.raises(AuditKeyError, match="does not exist") as exc:
        load_audit_key(home, None, create=False)
    assert str(home / "audit.key") in str(exc.value)
    assert KEY_FILE_ENV not in str(exc.value)
    assert not home.exists()


def test_the_home_key_is_still_not_followed_through_a_symlink(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "audit.key").symlink_to(write_file(tmp_path / "elsewhere.key", secrets.token_hex(32)))
    with pytest.raises(AuditKeyError, match="cannot open"):
        load_audit_key(home, None)
    with pytest.raises(AuditKeyError, match="cannot open"):
        load_key(home / "audit.key")


@pytest.mark.anyio
async def test_a_trail_opened_with_a_key_file_is_keyed_by_it(
    engine: AsyncEngine, home: Path, tmp_path: Path, make_record: Callable[..., RequestRecord]
) -> None:
    hex_key = secrets.token_hex(32)
    key_file = kubernetes_mount(tmp_path / "etc-airlock", hex_key)
    trail = AuditTrail.open(engine, home, key_file=key_file)
    assert trail.key == bytes.fromhex(hex_key)
    await trail.append(make_record())
    assert (await verify_db(engine, bytes.fromhex(hex_key))).ok
    assert not (await verify_db(engine, secrets.token_bytes(32))).ok
    assert not (home / "audit.key").exists()
    with pytest.raises(AuditKeyError, match=KEY_FILE_ENV):
        AuditTrail.open(engine, home, key_file=tmp_path / "missing.key")
