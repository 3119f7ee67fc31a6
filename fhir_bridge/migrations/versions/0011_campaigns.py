"""Campaigns and broadcasts: audiences, drafts, approvals, runs and their recipients.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-30 09:30:00
"""

import sqlalchemy as sa
from alembic import op

from fhir_bridge.store.models import UTCDateTime

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

_STATUSES = "'draft', 'approved', 'running', 'paused', 'done', 'cancelled'"


def upgrade() -> None:
    op.create_table(
        "campaign",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("purpose", sa.String(length=64), nullable=False),
        sa.Column("audience", sa.JSON(), nullable=False),
        sa.Column("templates", sa.JSON(), nullable=False),
        sa.Column("cadence_days", sa.Integer(), nullable=True),
        sa.Column("ends_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("priority", sa.String(length=16), nullable=False),
        sa.Column("emergency", sa.Boolean(), nullable=False),
        sa.Column("cancels_appointments", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("drafted_by", sa.String(length=200), nullable=False),
        sa.Column("approved_by", sa.String(length=200), nullable=True),
        sa.Column("runs", sa.Integer(), nullable=False),
        sa.Column("next_run_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("approved_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("started_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("finished_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("updated_at", UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(f"status IN ({_STATUSES})", name="ck_campaign_status"),
        sa.CheckConstraint("priority IN ('routine', 'alert')", name="ck_campaign_priority"),
        sa.CheckConstraint(
            "kind IN ('health-tips', 'preventive-care', 'broadcast')", name="ck_campaign_kind"
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "campaign_run",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("campaign_id", sa.String(length=36), nullable=False),
        sa.Column("run", sa.Integer(), nullable=False),
        sa.Column("started_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("finished_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("audience", sa.Integer(), nullable=False),
        sa.Column("planned", sa.Integer(), nullable=False),
        sa.Column("withheld", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("campaign_id", "run", name="uq_campaign_run"),
    )
    op.create_index("ix_campaign_run_campaign_id", "campaign_run", ["campaign_id"])


def downgrade() -> None:
    op.drop_index("ix_campaign_run_campaign_id", table_name="campaign_run")
    op.drop_table("campaign_run")
    op.drop_table("campaign")
