"""Lean ingest and work queues (enqueued_at, batch claims).

* ``subscription.notifications_rejected``: notifications the worker's full FHIR
  validation refused (the API only checks structure).
* ``ix_inbox_subscription_received``: the relay derives each Subscription's last
  notification and heartbeat from the inbox instead of the API updating the row.
* ``planned_message.writeback_enqueued_at``: the relay resends a write-back only when
  it was really lost.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30 09:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("subscription") as batch:
        batch.add_column(
            sa.Column("notifications_rejected", sa.Integer(), nullable=False, server_default="0")
        )
    with op.batch_alter_table("planned_message") as batch:
        batch.add_column(
            sa.Column("writeback_enqueued_at", sa.DateTime(timezone=True), nullable=True)
        )
    op.create_index(
        "ix_inbox_subscription_received",
        "inbox_notification",
        ["subscription_id", "received_at"],
    )


def downgrade() -> None:
    op.drop_index("ix_inbox_subscription_received", table_name="inbox_notification")
    with op.batch_alter_table("planned_message") as batch:
        batch.drop_column("writeback_enqueued_at")
    with op.batch_alter_table("subscription") as batch:
        batch.drop_column("notifications_rejected")
