"""Communications as written (versions for the read-only FHIR API); auditor client assertions.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30 09:00:00
"""

import sqlalchemy as sa
from alembic import op

import fhir_bridge.store.models

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def _utc() -> fhir_bridge.store.models.UTCDateTime:
    return fhir_bridge.store.models.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "communication_version",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("resource_id", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("identifier_system", sa.String(length=255), nullable=False),
        sa.Column("identifier_value", sa.String(length=255), nullable=False),
        sa.Column("body", sa.JSON(), nullable=False),
        sa.Column("recorded_at", _utc(), nullable=False),
        sa.Column("ehr_id", sa.String(length=128), nullable=True),
        sa.Column("ehr_version", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("resource_id", "version", name="uq_communication_version"),
    )
    op.create_index(
        "ix_communication_version_identifier",
        "communication_version",
        ["identifier_system", "identifier_value"],
    )
    op.create_table(
        "communication_current",
        sa.Column("seq", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("resource_id", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("sent", _utc(), nullable=True),
        sa.Column("sent_sort", _utc(), nullable=False),
        sa.Column("last_updated", _utc(), nullable=False),
        sa.PrimaryKeyConstraint("seq"),
        sa.UniqueConstraint("resource_id"),
    )
    op.create_index("ix_communication_current_sent", "communication_current", ["sent_sort", "seq"])
    op.create_index("ix_communication_current_updated", "communication_current", ["last_updated"])
    op.create_table(
        "communication_token",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("resource_id", sa.String(length=64), nullable=False),
        sa.Column("param", sa.String(length=32), nullable=False),
        sa.Column("system", sa.String(length=255), nullable=False),
        sa.Column("value", sa.String(length=255), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_communication_token_resource_id", "communication_token", ["resource_id"])
    op.create_index("ix_communication_token_lookup", "communication_token", ["param", "value"])
    op.create_table(
        "client_assertion",
        sa.Column("client_id", sa.String(length=128), nullable=False),
        sa.Column("jti", sa.String(length=255), nullable=False),
        sa.Column("expires_at", _utc(), nullable=False),
        sa.PrimaryKeyConstraint("client_id", "jti"),
    )


def downgrade() -> None:
    op.drop_table("client_assertion")
    op.drop_index("ix_communication_token_lookup", table_name="communication_token")
    op.drop_index("ix_communication_token_resource_id", table_name="communication_token")
    op.drop_table("communication_token")
    op.drop_index("ix_communication_current_updated", table_name="communication_current")
    op.drop_index("ix_communication_current_sent", table_name="communication_current")
    op.drop_table("communication_current")
    op.drop_index("ix_communication_version_identifier", table_name="communication_version")
    op.drop_table("communication_version")
