"""Errors of the audit trail. Messages hold indexes and reasons, never record content."""

from __future__ import annotations

__all__ = ["AuditError", "AuditIntegrityError", "AuditKeyError"]


class AuditError(Exception):
    """Base class of audit-trail failures."""


class AuditKeyError(AuditError):
    """The audit key file is missing, unreadable, malformed or too widely readable."""


class AuditIntegrityError(AuditError):
    """The stored chain or its head does not match what this process expects."""
