"""Event numbers each stored notification carries, so a gap can be checked against the inbox.

* ``inbox_notification.event_first`` / ``event_last``: the (contiguous) event numbers a
  topic notification carries, set when it is stored; ``NULL`` for anything else. A worker
  that sees event 7 before event 6 was applied, or the periodic check that sees the EHR's
  count ahead of ``events_through`` while notifications wait in the inbox, asks the EHR
  only for the numbers no stored notification carries.
* ``ix_inbox_subscription_events``: that lookup, per Subscription.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-30 11:40:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("inbox_notification") as batch:
        batch.add_column(sa.Column("event_first", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("event_last", sa.Integer(), nullable=True))
    op.create_index(
        "ix_inbox_subscription_events",
        "inbox_notification",
        ["subscription_id", "event_last"],
    )


def downgrade() -> None:
    op.drop_index("ix_inbox_subscription_events", table_name="inbox_notification")
    with op.batch_alter_table("inbox_notification") as batch:
        batch.drop_column("event_last")
        batch.drop_column("event_first")
