"""SQL for the staff panel's sessions and pending launches (nothing else touches these tables)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, update
from sqlalchemy.orm import Session

from fhir_bridge.store.models import PendingLaunchRecord, StaffSessionRecord


def add_pending(session: Session, record: PendingLaunchRecord, stale_before: datetime) -> None:
    """Store a launch waiting for its callback; launches older than ``stale_before`` go."""
    session.execute(
        delete(PendingLaunchRecord).where(PendingLaunchRecord.created_at < stale_before)
    )
    session.add(record)


def take_pending(session: Session, state_hash: str) -> PendingLaunchRecord | None:
    """The pending launch for a ``state`` hash, deleted in the same statement (single use)."""
    return session.execute(
        delete(PendingLaunchRecord)
        .where(PendingLaunchRecord.state_hash == state_hash)
        .returning(PendingLaunchRecord)
    ).scalar_one_or_none()


def add_session(session: Session, record: StaffSessionRecord, now: datetime) -> None:
    """Store a new staff session; expired ones are deleted on the way."""
    session.execute(delete(StaffSessionRecord).where(StaffSessionRecord.expires_at <= now))
    session.add(record)


def get_session(session: Session, session_id: str) -> StaffSessionRecord | None:
    return session.get(StaffSessionRecord, session_id)


def touch_session(session: Session, session_id: str, now: datetime) -> None:
    """Record activity (the idle timeout counts from here)."""
    session.execute(
        update(StaffSessionRecord)
        .where(StaffSessionRecord.id == session_id)
        .values(last_seen_at=now)
        .execution_options(synchronize_session=False)
    )


def delete_session(session: Session, session_id: str) -> None:
    session.execute(delete(StaffSessionRecord).where(StaffSessionRecord.id == session_id))
