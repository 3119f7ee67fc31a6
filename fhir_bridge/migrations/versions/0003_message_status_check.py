"""Planned messages: CHECK constraints on ``status`` and ``communication_status``.

Revision ID: 0003
Revises: 0002
Create Date: 2027-01-11 10:00:00
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

# Frozen copies of the sets in fhir_bridge.store.models (a migration never follows later edits).
STATUSES = ("planned", "queued", "sending", "sent", "withheld", "cancelled", "failed", "unknown")
COMMUNICATION_STATUSES = ("none", "pending", "written")


def _one_of(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def upgrade() -> None:
    with op.batch_alter_table("planned_message", schema=None) as batch_op:
        batch_op.create_check_constraint("ck_planned_message_status", _one_of("status", STATUSES))
        batch_op.create_check_constraint(
            "ck_planned_message_communication_status",
            _one_of("communication_status", COMMUNICATION_STATUSES),
        )


def downgrade() -> None:
    with op.batch_alter_table("planned_message", schema=None) as batch_op:
        batch_op.drop_constraint("ck_planned_message_communication_status", type_="check")
        batch_op.drop_constraint("ck_planned_message_status", type_="check")
