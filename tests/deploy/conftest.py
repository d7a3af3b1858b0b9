"""Shared fixtures for the deployment-kit tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from airlock.deploy.sealed import Kek, generate_kek_file


@pytest.fixture
def kek(tmp_path: Path) -> Kek:
    return generate_kek_file(tmp_path / "kek")


@pytest.fixture
def other_kek(tmp_path: Path) -> Kek:
    return generate_kek_file(tmp_path / "kek-other")
