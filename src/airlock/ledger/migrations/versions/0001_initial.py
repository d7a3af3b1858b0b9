"""Initial schema: usage, audit chain (records, checkpoints, head), API keys.

Revision ID: 0001_initial
Revises:
Create Date: 2025-06-01
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0001_initial"
down_revision = None
branch_labels = None
depends_on = None

_TS = sa.DateTime(timezone=True)
_GENESIS = "0" * 64


def upgrade() -> None:
    op.create_table(
        "usage",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("request_id", sa.String(128), nullable=False),
        sa.Column("ts", _TS, nullable=False),
        sa.Column("principal_id", sa.String(128), nullable=False),
        sa.Column("tenant", sa.String(128), nullable=False),
        sa.Column("key_kind", sa.String(16), nullable=False),
        sa.Column("endpoint", sa.String(64), nullable=False),
        sa.Column("requested_model", sa.String(128), nullable=False),
        sa.Column("served_model", sa.String(128), nullable=True),
        sa.Column("deployment", sa.String(128), nullable=True),
        sa.Column("provider", sa.String(64), nullable=True),
        sa.Column("region", sa.String(32), nullable=True),
        sa.Column("tier", sa.String(16), nullable=True),
        sa.Column("route_reason", sa.String(32), nullable=False),
        sa.Column("sensitive", sa.Boolean(), nullable=False),
        sa.Column("entity_counts", sa.JSON(), nullable=False),
        sa.Column("prompt_tokens", sa.BigInteger(), nullable=False),
        sa.Column("completion_tokens", sa.BigInteger(), nullable=False),
        sa.Column("cost_usd", sa.Float(), nullable=False),
        sa.Column("baseline_cost_usd", sa.Float(), nullable=False),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.Column("ttft_ms", sa.Float(), nullable=True),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("finish_reason", sa.String(32), nullable=True),
        sa.Column("error_type", sa.String(64), nullable=True),
        sa.Column("stream", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_usage"),
    )
    op.create_index("ix_usage_ts", "usage", ["ts"])
    op.create_index("ix_usage_principal_ts", "usage", ["principal_id", "ts"])
    op.create_index("ix_usage_tenant_ts", "usage", ["tenant", "ts"])
    op.create_index("ix_usage_request_id", "usage", ["request_id"])

    op.create_table(
        "audit_records",
        sa.Column("idx", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("ts", _TS, nullable=False),
        sa.Column("appended_at", _TS, nullable=False),
        sa.Column("event", sa.String(16), nullable=False),
        sa.Column("request_id", sa.String(128), nullable=True),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("idx", name="pk_audit_records"),
    )
    op.create_index("ix_audit_records_ts", "audit_records", ["ts"])
    op.create_index("ix_audit_records_appended_at", "audit_records", ["appended_at"])

    op.create_table(
        "audit_checkpoints",
        sa.Column("idx", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("mac", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("idx", name="pk_audit_checkpoints"),
    )

    head = op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("last_index", sa.BigInteger(), nullable=False),
        sa.Column("last_hash", sa.String(64), nullable=False),
        sa.Column("anchor_index", sa.BigInteger(), nullable=False),
        sa.Column("anchor_prev_hash", sa.String(64), nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
        sa.Column("mac", sa.String(64), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_audit_head"),
    )
    # The row every append locks; it exists from the start so appends never race to
    # create it.
    op.bulk_insert(
        head,
        [
            {
                "id": 1,
                "last_index": -1,
                "last_hash": _GENESIS,
                "anchor_index": 0,
                "anchor_prev_hash": _GENESIS,
                "updated_at": datetime.now(UTC),
                "mac": None,
            }
        ],
    )

    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("tenant", sa.String(128), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("key_prefix", sa.String(32), nullable=False),
        sa.Column("allowed_models", sa.JSON(), nullable=True),
        sa.Column("allowed_regions", sa.JSON(), nullable=True),
        sa.Column("rpm", sa.Integer(), nullable=True),
        sa.Column("tpm", sa.Integer(), nullable=True),
        sa.Column("budget_usd_daily", sa.Float(), nullable=True),
        sa.Column("budget_usd_monthly", sa.Float(), nullable=True),
        sa.Column("privacy_policy", sa.String(32), nullable=True),
        sa.Column("is_admin", sa.Boolean(), nullable=False),
        sa.Column("expires_at", _TS, nullable=True),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("rotated_at", _TS, nullable=True),
        sa.Column("revoked_at", _TS, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_api_keys"),
        sa.UniqueConstraint("key_hash", name="uq_api_keys_key_hash"),
    )
    op.create_index("ix_api_keys_tenant", "api_keys", ["tenant"])


def downgrade() -> None:
    op.drop_index("ix_api_keys_tenant", table_name="api_keys")
    op.drop_table("api_keys")
    op.drop_table("audit_head")
    op.drop_table("audit_checkpoints")
    op.drop_index("ix_audit_records_appended_at", table_name="audit_records")
    op.drop_index("ix_audit_records_ts", table_name="audit_records")
    op.drop_table("audit_records")
    op.drop_index("ix_usage_request_id", table_name="usage")
    op.drop_index("ix_usage_tenant_ts", table_name="usage")
    op.drop_index("ix_usage_principal_ts", table_name="usage")
    op.drop_index("ix_usage_ts", table_name="usage")
    op.drop_table("usage")
