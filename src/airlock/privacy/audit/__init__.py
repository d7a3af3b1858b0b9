"""The content-free, hash-chained audit trail (database + JSONL mirror).

Public API: :class:`AuditTrail` (append, purge, mirror), :func:`verify_db`,
:func:`verify_jsonl`, :func:`verify_both`, :func:`export_records`. See docs/privacy.md.
"""

from airlock.privacy.audit.chain import AppendResult, AuditTrail, PurgeResult
from airlock.privacy.audit.errors import AuditError, AuditIntegrityError, AuditKeyError
from airlock.privacy.audit.export import ExportFormat, export_records
from airlock.privacy.audit.key import (
    KEY_FILE_ENV,
    KEY_FILENAME,
    load_audit_key,
    load_key,
    load_or_create_key,
)
from airlock.privacy.audit.mirror import JsonlMirror
from airlock.privacy.audit.verify import VerifyResult, verify_both, verify_db, verify_jsonl

__all__ = [
    "KEY_FILENAME",
    "KEY_FILE_ENV",
    "AppendResult",
    "AuditError",
    "AuditIntegrityError",
    "AuditKeyError",
    "AuditTrail",
    "ExportFormat",
    "JsonlMirror",
    "PurgeResult",
    "VerifyResult",
    "export_records",
    "load_audit_key",
    "load_key",
    "load_or_create_key",
    "verify_both",
    "verify_db",
    "verify_jsonl",
]
