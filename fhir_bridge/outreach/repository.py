"""SQL for planned messages and the local consent ledger."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import or_, select, true, update
from sqlalchemy.orm import Session

from fhir_bridge.outreach.lifecycle import (
    FINAL_STATUSES,
    HISTORY_STATUSES,
    OPEN_STATUSES,
    CommunicationStatus,
    MessageLifecycle,
    MessageStatus,
)
from fhir_bridge.store.models import LedgerEntry, PlannedMessage
from rules.caps import REASON_CAP_REACHED
from rules.consent import LedgerEntry as ConsentLedgerEntry

__all__ = ["FINAL_STATUSES", "HISTORY_STATUSES", "OPEN_STATUSES"]


def messages_for_patient(session: Session, patient_ref: str) -> Sequence[PlannedMessage]:
    return list(
        session.scalars(select(PlannedMessage).where(PlannedMessage.patient_ref == patient_ref))
    )


def by_key(session: Session, keys: Sequence[str]) -> dict[str, PlannedMessage]:
    if not keys:
        return {}
    rows = session.scalars(select(PlannedMessage).where(PlannedMessage.key.in_(keys)))
    return {row.key: row for row in rows}


def get(session: Session, message_id: str) -> PlannedMessage | None:
    return session.get(PlannedMessage, message_id)


def get_for_update(session: Session, message_id: str) -> PlannedMessage | None:
    return session.scalar(
        select(PlannedMessage).where(PlannedMessage.id == message_id).with_for_update()
    )


def claim(session: Session, message_id: str, now: datetime, lease: timedelta) -> bool:
    """Due ``planned`` (or ``queued`` past its lease) → ``queued``: ``MessageLifecycle.claim``."""
    return MessageLifecycle(session).claim(message_id, now, lease)


def claim_batch(
    session: Session,
    now: datetime,
    lease: timedelta,
    *,
    limit: int = 500,
    ids: Sequence[str] | None = None,
) -> list[str]:
    """Up to ``limit`` due messages (or those of ``ids`` that are due) → ``queued``."""
    return MessageLifecycle(session).claim_batch(now, lease, limit=limit, ids=ids)


def abandoned_sends(session: Session, now: datetime) -> Sequence[str]:
    """Messages stuck in ``sending`` past their lease: a worker died around the provider call."""
    return list(
        session.scalars(
            select(PlannedMessage.id).where(
                PlannedMessage.status == MessageStatus.SENDING.value,
                PlannedMessage.lease_until < now,
            )
        )
    )


def pending_writebacks(
    session: Session,
    older_than: datetime,
    limit: int,
    *,
    enqueued_before: datetime | None = None,
) -> Sequence[str]:
    """Communications still to write whose row settled before ``older_than``.

    A ``cap-reached`` decision waits until its ``send_at``: before then a re-plan
    may still send the message (``outreach.planning``, provisional caps).
    ``enqueued_before``: skip those the relay handed to the queue since then.
    """
    handed = (
        or_(
            PlannedMessage.writeback_enqueued_at.is_(None),
            PlannedMessage.writeback_enqueued_at < enqueued_before,
        )
        if enqueued_before is not None
        else true()
    )
    return list(
        session.scalars(
            select(PlannedMessage.id)
            .where(
                PlannedMessage.communication_status == CommunicationStatus.PENDING.value,
                PlannedMessage.updated_at < older_than,
                handed,
                or_(
                    PlannedMessage.reason.is_(None),
                    PlannedMessage.reason != REASON_CAP_REACHED,
                    PlannedMessage.send_at < older_than,
                ),
            )
            .order_by(PlannedMessage.updated_at)
            .limit(limit)
        )
    )


def mark_writebacks_enqueued(session: Session, ids: Sequence[str], now: datetime) -> None:
    """The relay handed these write-backs to the queue (``updated_at`` stays as it was)."""
    if ids:
        session.execute(
            update(PlannedMessage)
            .where(PlannedMessage.id.in_(ids))
            .values(writeback_enqueued_at=now, updated_at=PlannedMessage.updated_at)
            .execution_options(synchronize_session=False)
        )


def ledger_for(
    session: Session, patient_ref: str, addresses: Sequence[str]
) -> Sequence[LedgerEntry]:
    """Ledger entries for a patient or any of their addresses (an opt-out follows the number)."""
    condition = LedgerEntry.patient_ref == patient_ref
    if addresses:
        condition = or_(condition, LedgerEntry.address.in_(addresses))
    return list(session.scalars(select(LedgerEntry).where(condition).order_by(LedgerEntry.id)))


def as_consent_entry(entry: LedgerEntry) -> ConsentLedgerEntry:
    """A ledger row as the pure consent engine sees it (traces name it ``ledger:{id}``)."""
    return ConsentLedgerEntry(
        id=str(entry.id),
        patient_ref=entry.patient_ref or "",
        channel=entry.channel,
        address=entry.address,
        purpose=entry.purpose,
        action=entry.action,
        recorded_at=entry.recorded_at,
        source=entry.source,
    )


def add_ledger_entry(session: Session, entry: LedgerEntry) -> LedgerEntry:
    session.add(entry)
    session.flush()
    return entry


def mark_communication_written(
    session: Session, message_id: str, communication_id: str | None
) -> bool:
    """Record the written Communication if the row still waits for one; True if this won."""
    won = session.execute(
        update(PlannedMessage)
        .where(
            PlannedMessage.id == message_id,
            PlannedMessage.communication_status == "pending",
        )
        .values(communication_id=communication_id, communication_status="written")
        .returning(PlannedMessage.id)
        .execution_options(synchronize_session=False)
    ).scalar_one_or_none()
    return won is not None


def request_communication(session: Session, message_id: str) -> bool:
    """Ask for a Communication for a settled message that has none due (a staff cancel)."""
    won = session.execute(
        update(PlannedMessage)
        .where(
            PlannedMessage.id == message_id,
            PlannedMessage.communication_status == CommunicationStatus.NONE.value,
        )
        .values(communication_status=CommunicationStatus.PENDING.value)
        .returning(PlannedMessage.id)
        .execution_options(synchronize_session=False)
    ).scalar_one_or_none()
    return won is not None
