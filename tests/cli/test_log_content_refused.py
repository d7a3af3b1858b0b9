"""Invariant 1: content logging cannot be turned on from the config file.

``privacy.log_content`` exists only to be refused by name; no code reads it. Both the
server and the offline commands stop with exit 2 before doing anything.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

AIRLOCK = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "airlock"
REFUSAL = "airlock never logs prompt or completion content"


@pytest.mark.parametrize(
    ("value", "args", "stdin"),
    [
        ("true", ["serve", "--port", "0"], b""),
        ('"yes"', ["classify"], b'{"prompt": "hello"}\n'),
        ("1", ["route", "explain", "hello"], b""),
    ],
)
def test_log_content_in_config_stops_the_command(
    tmp_path: Path, value: str, args: list[str], stdin: bytes
) -> None:
    config = tmp_path / "airlock.yaml"
    config.write_text(f"privacy:\n  log_content: {value}\n", encoding="utf-8")
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if k != "AIRLOCK_MASTER_KEY"}
    env.update(AIRLOCK_HOME=str(home), AIRLOCK_CONFIG=str(config))
    done = subprocess.run(
        [str(AIRLOCK), *args],
        input=stdin,
        capture_output=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2, done.stderr.decode()
    stderr = done.stderr.decode()
    assert REFUSAL in stderr
    assert "privacy" in stderr
    assert done.stdout == b""
    assert not home.exists()  # refused before any key, database or log file was made
