"""``airlock serve`` with ``AIRLOCK_AUDIT_KEY_FILE``: the real command, real files.

A configured audit key must exist and be private before the server binds; the chain a
gateway writes with it verifies with it (``airlock audit verify``) and with no other key.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import httpx
import yaml

from tests.support.audit_keys import kubernetes_key, write_key_file
from tests.support.faulty_upstream import FaultyUpstream
from tests.support.server import AIRLOCK, start_gateway

MASTER = "sk-airlock-test-master-key"


def _run(home: Path, *args: str, key_file: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRLOCK_")}
    env["AIRLOCK_HOME"] = str(home)
    env["AIRLOCK_MASTER_KEY"] = MASTER
    if key_file is not None:
        env["AIRLOCK_AUDIT_KEY_FILE"] = key_file
    return subprocess.run(
        [str(AIRLOCK), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def test_a_missing_key_file_stops_serve_before_anything_is_made(tmp_path: Path) -> None:
    home = tmp_path / "home"
    missing = tmp_path / "etc-airlock" / "audit.key"
    done = _run(home, "serve", "--port", "0", key_file=str(missing))
    assert done.returncode == 2, done.stdout + done.stderr
    assert "AIRLOCK_AUDIT_KEY_FILE" in done.stderr
    assert str(missing) in done.stderr
    assert "never created" in done.stderr
    assert "listening" not in done.stdout
    assert not missing.parent.exists()
    assert not home.exists()


def test_a_symlinked_world_readable_key_stops_serve(tmp_path: Path) -> None:
    home = tmp_path / "home"
    # ``defaultMode: 0444``: every user of the node could read it.
    key_file, hex_key = kubernetes_key(tmp_path / "etc-airlock", mode=0o444)
    done = _run(home, "serve", "--port", "0", key_file=str(key_file))
    assert done.returncode == 2, done.stdout + done.stderr
    assert "group or others" in done.stderr
    assert "defaultMode: 0400" in done.stderr
    assert hex_key not in done.stdout + done.stderr
    assert "listening" not in done.stdout
    assert not home.exists()


def test_an_empty_key_file_variable_is_a_configuration_error(tmp_path: Path) -> None:
    home = tmp_path / "home"
    done = _run(home, "serve", "--port", "0", key_file="")
    assert done.returncode == 2, done.stdout + done.stderr
    assert "AIRLOCK_AUDIT_KEY_FILE is set but empty" in done.stderr
    assert not home.exists()


def test_the_gateway_chains_with_the_configured_key(tmp_path: Path) -> None:
    home = tmp_path / "home"
    key_file, _ = kubernetes_key(tmp_path / "etc-airlock")
    other = tmp_path / "other" / "audit.key"
    write_key_file(other)
    with FaultyUpstream("up") as upstream:
        config = tmp_path / "airlock.yaml"
        model = {"provider": "openai-compatible", "base_url": upstream.base_url}
        config.write_text(
            yaml.safe_dump(
                {"models": [{"name": "local", "tier": "self-hosted", "deployments": [model]}]}
            )
        )
        gw = start_gateway(
            home, config=config, master_key=MASTER, env={"AIRLOCK_AUDIT_KEY_FILE": str(key_file)}
        )
        try:
            for _ in range(2):
                resp = httpx.post(
                    gw.api_base + "/chat/completions",
                    headers={"authorization": f"Bearer {MASTER}"},
                    json={"model": "local", "messages": [{"role": "user", "content": "hi"}]},
                    timeout=30,
                )
                assert resp.status_code == 200, resp.text
        finally:
            gw.stop()  # SIGTERM: a graceful stop flushes every queued record
    assert not (home / "audit.key").exists()

    ok = _run(home, "audit", "verify", "--source", "both", key_file=str(key_file))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "2 records" in ok.stdout
    wrong = _run(home, "audit", "verify", key_file=str(other))
    assert wrong.returncode == 1, wrong.stdout + wrong.stderr
    assert "first bad record index 0" in wrong.stdout
