"""AuditEvents recorded locally and pushed to the EHR.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 09:00:00
"""

import sqlalchemy as sa
from alembic import op

from fhir_bridge.store.models import UTCDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

# A frozen copy of fhir_bridge.store.models.AuditPushStatus (a migration never follows edits).
PUSH_STATUSES = ("pending", "written", "rejected")


def upgrade() -> None:
    statuses = ", ".join(repr(status) for status in PUSH_STATUSES)
    op.create_table(
        "audit_event",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("recorded", UTCDateTime(timezone=True), nullable=False),
        sa.Column("type_code", sa.String(length=64), nullable=False),
        sa.Column("subtype_code", sa.String(length=64), nullable=True),
        sa.Column("action", sa.String(length=1), nullable=True),
        sa.Column("outcome", sa.String(length=2), nullable=False),
        sa.Column("agent_ref", sa.String(length=200), nullable=True),
        sa.Column("patient_ref", sa.String(length=200), nullable=True),
        sa.Column("resource", sa.JSON(), nullable=False),
        sa.Column("push_status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("lease_until", UTCDateTime(timezone=True), nullable=True),
        sa.Column("ehr_id", sa.String(length=128), nullable=True),
        sa.Column("push_error", sa.String(length=200), nullable=True),
        sa.Column("pushed_at", UTCDateTime(timezone=True), nullable=True),
        sa.CheckConstraint(f"push_status IN ({statuses})", name="ck_audit_event_push_status"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_audit_event_agent_ref", "audit_event", ["agent_ref"])
    op.create_index("ix_audit_event_patient_ref", "audit_event", ["patient_ref"])
    op.create_index("ix_audit_event_push", "audit_event", ["push_status", "recorded"])
    op.create_index("ix_audit_event_recorded", "audit_event", ["recorded"])


def downgrade() -> None:
    op.drop_index("ix_audit_event_recorded", table_name="audit_event")
    op.drop_index("ix_audit_event_push", table_name="audit_event")
    op.drop_index("ix_audit_event_patient_ref", table_name="audit_event")
    op.drop_index("ix_audit_event_agent_ref", table_name="audit_event")
    op.drop_table("audit_event")
