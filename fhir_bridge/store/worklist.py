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

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session


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
