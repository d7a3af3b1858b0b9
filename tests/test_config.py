"""Environment settings: ``AIRLOCK_AUDIT_KEY_FILE`` is read once into ``EnvSettings``."""

from __future__ import annotations

from pathlib import Path

import pytest

from airlock.config import ConfigError, load_settings


def test_the_audit_key_file_is_read_from_the_environment() -> None:
    settings = load_settings(environ={"AIRLOCK_AUDIT_KEY_FILE": "/etc/airlock/audit.key"})
    assert settings.env.audit_key_file == Path("/etc/airlock/audit.key")


def test_without_the_variable_there_is_no_key_file() -> None:
    settings = load_settings(environ={"AIRLOCK_HOME": "/srv/airlock"})
    assert settings.env.audit_key_file is None
    assert settings.home == Path("/srv/airlock")


@pytest.mark.parametrize("value", ["", "  "])
def test_an_empty_variable_is_refused_by_name(value: str) -> None:
    with pytest.raises(ConfigError, match="AIRLOCK_AUDIT_KEY_FILE is set but empty"):
        load_settings(environ={"AIRLOCK_AUDIT_KEY_FILE": value})
