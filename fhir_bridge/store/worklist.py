"""The one lease-and-relay pattern for tables that queue work (inbox, inbound SMS).

A row is ``pending`` until a worker claims it (``processing`` with a lease); a claim is a
conditional UPDATE, atomic on SQLite and PostgreSQL alike. The relay finds rows never
handed to the broker, handed over long ago, or whose lease expired, so a lost Celery
message or a killed worker only delays work.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from fhir_bridge.store.models import (
    CommunicationSync,
    DeliveryReceipt,
    InboundMessage,
    InboxNotification,
    PlannedMessage,
)
from rules.caps import REASON_CAP_REACHED


def claim(session: Session, model: Any, row_id: int, now: datetime, lease: timedelta) -> bool:
    """Take a pending (or abandoned) row; False when another worker holds it."""
    result = session.execute(
        update(model)
        .where(
            model.id == row_id,
            or_(
                model.status == "pending",
                (model.status == "processing") & (model.lease_until < now),
            ),
        )
        .values(status="processing", lease_until=now + lease, attempts=model.attempts + 1)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def claim_many(
    session: Session,
    model: Any,
    row_ids: Sequence[int],
    now: datetime,
    lease: timedelta,
    returning: Sequence[Any],
) -> list[Any]:
    """:func:`claim` for several rows in one statement: the rows this worker won, with the
    ``returning`` columns (``attempts`` as counted by this claim), in id order."""
    if not row_ids:
        return []
    result = session.execute(
        update(model)
        .where(
            model.id.in_(row_ids),
            or_(
                model.status == "pending",
                (model.status == "processing") & (model.lease_until < now),
            ),
        )
        .values(status="processing", lease_until=now + lease, attempts=model.attempts + 1)
        .returning(*returning)
        .execution_options(synchronize_session=False)
    )
    return sorted(result.all(), key=lambda row: row.id)


def due_for_relay(
    session: Session, model: Any, now: datetime, stale_after: timedelta, limit: int
) -> Sequence[int]:
    """Rows never handed to the queue, handed over long ago, or abandoned mid-work."""
    return list(
        session.scalars(
            select(model.id)
            .where(
                or_(
                    (model.status == "pending")
                    & or_(model.enqueued_at.is_(None), model.enqueued_at < now - stale_after),
                    (model.status == "processing") & (model.lease_until < now),
                )
            )
            .order_by(model.id)
            .limit(limit)
        )
    )


def mark_enqueued(session: Session, model: Any, ids: Sequence[int], now: datetime) -> None:
    if ids:
        session.execute(update(model).where(model.id.in_(ids)).values(enqueued_at=now))


# Stalls: the oldest unprocessed item of each kind of work (``/ready``, the relay's warning).

WORK_QUEUES = (
    "inbox-notifications",
    "messages-due",
    "write-backs",
    "inbound-sms",
    "delivery-receipts",
    "communication-syncs",
)


def oldest_waiting(session: Session, now: datetime) -> dict[str, datetime | None]:
    """When the oldest item still waiting in each queue became due (None: the queue is empty).

    Only ids and times are read; no PHI leaves these queries.
    """
    unfinished = ("pending", "processing")
    return {
        "inbox-notifications": session.scalar(
            select(func.min(InboxNotification.received_at)).where(
                InboxNotification.status.in_(unfinished)
            )
        ),
        "messages-due": session.scalar(
            select(func.min(PlannedMessage.send_at)).where(
                PlannedMessage.status.in_(("planned", "queued", "sending")),
                PlannedMessage.send_at <= now,
            )
        ),
        "write-backs": session.scalar(
            select(func.min(PlannedMessage.updated_at)).where(
                PlannedMessage.communication_status == "pending",
                or_(
                    PlannedMessage.reason.is_(None),
                    PlannedMessage.reason != REASON_CAP_REACHED,
                    PlannedMessage.send_at <= now,
                ),
            )
        ),
        "inbound-sms": session.scalar(
            select(func.min(InboundMessage.received_at)).where(
                InboundMessage.status.in_(unfinished)
            )
        ),
        "delivery-receipts": session.scalar(
            select(func.min(DeliveryReceipt.received_at)).where(
                DeliveryReceipt.outcome == "pending"
            )
        ),
        "communication-syncs": session.scalar(
            select(func.min(CommunicationSync.requested_at)).where(
                CommunicationSync.status.in_(unfinished)
            )
        ),
    }


def queue_ages(session: Session, now: datetime) -> dict[str, int | None]:
    """Seconds the oldest waiting item of each queue has waited (None: empty)."""
    return {
        name: None if since is None else max(0, int((now - since).total_seconds()))
        for name, since in oldest_waiting(session, now).items()
    }


def stalled_queues(ages: dict[str, int | None], threshold_seconds: int) -> dict[str, int]:
    """The queues whose oldest item waited longer than ``threshold_seconds``."""
    return {name: age for name, age in ages.items() if age is not None and age > threshold_seconds}
