"""Typed errors of the deployment kit (planner, catalogs, sealed weights).

Messages carry metadata only (names, sizes, chunk indices, key sources); never key
material and never file contents.
"""

from __future__ import annotations

from airlock.errors import AirlockError, BadRequestError, NotFoundError

__all__ = [
    "CatalogError",
    "KeySourceError",
    "PlanInputError",
    "SealAuthenticationError",
    "SealError",
    "SealFormatError",
    "SealTrailingDataError",
    "SealTruncatedError",
    "UnknownGpuError",
    "UnknownModelError",
    "WrongKeyError",
]


class CatalogError(AirlockError):
    """A bundled catalog data file is missing or does not validate."""


class UnknownModelError(NotFoundError):
    default_code = "unknown_model"

    def __init__(self, name: str, valid: list[str]) -> None:
        super().__init__(
            f"unknown model {name!r}; valid names: {', '.join(sorted(valid))}", param="model"
        )
        self.name = name
        self.valid = sorted(valid)


class UnknownGpuError(NotFoundError):
    default_code = "unknown_gpu"

    def __init__(self, name: str, valid: list[str]) -> None:
        super().__init__(
            f"unknown GPU {name!r}; valid names: {', '.join(sorted(valid))}", param="gpu"
        )
        self.name = name
        self.valid = sorted(valid)


class PlanInputError(BadRequestError):
    """A planner input is out of range or inconsistent (bad dtype, context, GPU count…)."""

    default_code = "invalid_plan_input"


class SealError(AirlockError):
    """Base of every sealed-weights failure. ``unseal`` never leaves an output behind."""

    default_code = "seal_error"


class SealFormatError(SealError):
    """The input is not a sealed file, or its header is malformed or unsupported."""

    default_code = "seal_format"


class KeySourceError(SealError):
    """The key-encryption key could not be obtained (missing file, unset variable, failed
    command, wrong length)."""

    default_code = "key_source"


class WrongKeyError(SealError):
    """The key-encryption key given is not the one the file was sealed with."""

    default_code = "wrong_key"


class SealAuthenticationError(SealError):
    """A chunk or the header failed authentication: modified, reordered or corrupted."""

    default_code = "seal_authentication"

    def __init__(self, message: str, *, chunk_index: int | None = None) -> None:
        super().__init__(message)
        self.chunk_index = chunk_index


class SealTruncatedError(SealAuthenticationError):
    """The sealed file ends before its final chunk (truncated or final chunk dropped)."""

    default_code = "seal_truncated"


class SealTrailingDataError(SealAuthenticationError):
    """Data follows the authenticated final chunk (appended chunk or garbage)."""

    default_code = "seal_trailing_data"
