"""Reconciliation runs; body hashes of purged messages and replies (retention).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01 09:00:00
"""

import sqlalchemy as sa
from alembic import op

from fhir_bridge.store.models import UTCDateTime

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

_PURGE_COLUMNS = ("planned_message", "inbound_message", "communication_version")


def upgrade() -> None:
    op.create_table(
        "reconciliation_run",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("started_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("finished_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("since", UTCDateTime(timezone=True), nullable=True),
        sa.Column("trigger", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=24), nullable=False),
        sa.Column("held", sa.Integer(), nullable=False),
        sa.Column("matched", sa.Integer(), nullable=False),
        sa.Column("missing", sa.Integer(), nullable=False),
        sa.Column("rewritten", sa.Integer(), nullable=False),
        sa.Column("different", sa.Integer(), nullable=False),
        sa.Column("unknown", sa.Integer(), nullable=False),
        sa.Column("error", sa.String(length=200), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_reconciliation_run_started", "reconciliation_run", ["started_at"])
    for table in _PURGE_COLUMNS:
        op.add_column(table, sa.Column("body_sha256", sa.String(length=64), nullable=True))
        op.add_column(table, sa.Column("body_purged_at", UTCDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    for table in _PURGE_COLUMNS:
        with op.batch_alter_table(table) as batch:
            batch.drop_column("body_purged_at")
            batch.drop_column("body_sha256")
    op.drop_index("ix_reconciliation_run_started", table_name="reconciliation_run")
    op.drop_table("reconciliation_run")
