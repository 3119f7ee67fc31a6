"""SQL for the inbox of accepted notifications."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from fhir_bridge.store import worklist
from fhir_bridge.store.db import insert_once
from fhir_bridge.store.models import InboxNotification


def insert_if_new(
    session: Session,
    *,
    subscription_id: str | None,
    dedupe_key: str,
    kind: str,
    body: dict[str, Any] | None,
    now: datetime,
) -> InboxNotification | None:
    """Store a notification unless one with the same dedupe key exists (then ``None``)."""
    existing = session.scalar(
        select(InboxNotification.id).where(InboxNotification.dedupe_key == dedupe_key)
    )
    if existing is not None:
        return None
    row = InboxNotification(
        subscription_id=subscription_id,
        dedupe_key=dedupe_key,
        kind=kind,
        body=body,
        received_at=now,
        status="pending",
    )
    return insert_once(session, row)


def claim(session: Session, inbox_id: int, now: datetime, lease: timedelta) -> bool:
    """Atomically take a pending (or abandoned) notification; False if someone else has it."""
    return worklist.claim(session, InboxNotification, inbox_id, now, lease)


def get(session: Session, inbox_id: int) -> InboxNotification | None:
    return session.get(InboxNotification, inbox_id)


def mark_done(session: Session, row: InboxNotification, now: datetime) -> None:
    row.status = "done"
    row.processed_at = now
    row.lease_until = None
    row.error_code = None


def mark_failed(session: Session, inbox_id: int, now: datetime, code: str, final: bool) -> None:
    """Record a processing failure; non-final failures go back to pending for the relay."""
    session.execute(
        update(InboxNotification)
        .where(InboxNotification.id == inbox_id)
        .values(
            status="failed" if final else "pending",
            error_code=code[:200],
            lease_until=None,
            enqueued_at=None if not final else InboxNotification.enqueued_at,
            processed_at=now if final else None,
        )
    )


def due_for_relay(
    session: Session, now: datetime, stale_after: timedelta, limit: int
) -> Sequence[int]:
    """Notifications never handed to the queue, or handed over long ago and still not done."""
    return worklist.due_for_relay(session, InboxNotification, now, stale_after, limit)


def mark_enqueued(session: Session, ids: Sequence[int], now: datetime) -> None:
    worklist.mark_enqueued(session, InboxNotification, ids, now)
