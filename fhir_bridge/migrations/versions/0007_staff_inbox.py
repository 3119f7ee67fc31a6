"""Staff inbox: handled and assigned replies; staff consent actions and their EHR Consent.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30 09:00:00
"""

import sqlalchemy as sa
from alembic import op

from fhir_bridge.store.models import UTCDateTime

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("staff_inbox_item") as batch:
        batch.add_column(sa.Column("handled_at", UTCDateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("handled_by", sa.String(length=200), nullable=True))
        batch.add_column(sa.Column("assigned_to", sa.String(length=200), nullable=True))
    op.create_table(
        "staff_consent_action",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("patient_ref", sa.String(length=200), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("address", sa.String(length=320), nullable=True),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("purposes", sa.JSON(), nullable=False),
        sa.Column("performer", sa.String(length=200), nullable=True),
        sa.Column("reason_code", sa.String(length=64), nullable=False),
        sa.Column("reason_text", sa.Text(), nullable=True),
        sa.Column("recorded_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("ehr_status", sa.String(length=16), nullable=False),
        sa.Column("consent_ref", sa.String(length=200), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_staff_consent_action_patient_ref", "staff_consent_action", ["patient_ref"])
    op.create_index("ix_staff_consent_ehr_status", "staff_consent_action", ["ehr_status"])


def downgrade() -> None:
    op.drop_index("ix_staff_consent_ehr_status", table_name="staff_consent_action")
    op.drop_index("ix_staff_consent_action_patient_ref", table_name="staff_consent_action")
    op.drop_table("staff_consent_action")
    with op.batch_alter_table("staff_inbox_item") as batch:
        batch.drop_column("assigned_to")
        batch.drop_column("handled_by")
        batch.drop_column("handled_at")
