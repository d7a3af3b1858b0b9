from __future__ import annotations

from typing import Any

import pytest

from airlock.engine.settings import EngineSettings


def test_defaults() -> None:
    settings = EngineSettings()
    assert settings.model_id == "smollm2"
    assert settings.n_ctx == 0
    assert settings.threads() >= 1
    assert EngineSettings(n_threads=3).threads() == 3


@pytest.mark.parametrize(
    "kwargs", [{"n_ctx": -1}, {"n_threads": 0}, {"n_batch": 0}, {"max_queued_jobs": 0}]
)
def test_invalid_settings_are_rejected(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        EngineSettings(**kwargs)
