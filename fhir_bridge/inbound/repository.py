"""SQL for the two-way messaging tables (receipts, Communication sync, inbound, replies, inbox)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from fhir_bridge.store import db, worklist
from fhir_bridge.store.models import (
    CommunicationSync,
    DeliveryReceipt,
    InboundMessage,
    LedgerEntry,
    MessageStatus,
    PlannedMessage,
    SmsReply,
    StaffInboxItem,
)

# A message the patient may have received (``unknown``: the provider may have it).
SENT_STATUSES = (MessageStatus.SENT.value, MessageStatus.UNKNOWN.value)
RowT = TypeVar("RowT", DeliveryReceipt, InboundMessage, SmsReply, StaffInboxItem)


def insert_once(session: Session, row: RowT) -> RowT | None:
    """Insert a row guarded by a unique key; ``None`` when it already exists (a duplicate)."""
    return db.insert_once(session, row)


def receipts_to_apply(session: Session, message_id: str) -> Sequence[DeliveryReceipt]:
    return list(
        session.scalars(
            select(DeliveryReceipt)
            .where(DeliveryReceipt.message_id == message_id, DeliveryReceipt.outcome == "pending")
            .order_by(DeliveryReceipt.id)
        )
    )


def message_ids_with_pending_receipts(session: Session, limit: int) -> Sequence[str]:
    return list(
        session.scalars(
            select(DeliveryReceipt.message_id)
            .where(DeliveryReceipt.outcome == "pending")
            .distinct()
            .limit(limit)
        )
    )


def planned_for_update(session: Session, message_id: str) -> PlannedMessage | None:
    return session.scalar(
        select(PlannedMessage).where(PlannedMessage.id == message_id).with_for_update()
    )


def request_communication_sync(session: Session, message_id: str, now: datetime) -> None:
    """Mark a message's Communication as needing an update (idempotent)."""
    row = session.get(CommunicationSync, message_id)
    if row is None:
        insert = CommunicationSync(message_id=message_id, status="pending", requested_at=now)
        savepoint = session.begin_nested()
        try:
            session.add(insert)
            session.flush()
        except IntegrityError:
            savepoint.rollback()
            row = session.get(CommunicationSync, message_id)
        else:
            savepoint.commit()
            return
    if row is not None:
        row.status, row.requested_at, row.lease_until = "pending", now, None


def claim_sync(session: Session, message_id: str, now: datetime, lease: timedelta) -> bool:
    result = session.execute(
        update(CommunicationSync)
        .where(
            CommunicationSync.message_id == message_id,
            or_(
                (CommunicationSync.status == "pending")
                & or_(CommunicationSync.lease_until.is_(None), CommunicationSync.lease_until < now),
                (CommunicationSync.status == "processing") & (CommunicationSync.lease_until < now),
            ),
        )
        .values(
            status="processing", lease_until=now + lease, attempts=CommunicationSync.attempts + 1
        )
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def finish_sync(
    session: Session, message_id: str, status: str, now: datetime, *, retry_at: datetime | None
) -> None:
    """Settle a sync: ``done``, ``failed``, or back to ``pending`` (not before ``retry_at``)."""
    session.execute(
        update(CommunicationSync)
        .where(CommunicationSync.message_id == message_id)
        .values(
            status=status,
            lease_until=retry_at,
            done_at=now if status in ("done", "failed") else None,
            error_code=None if status == "done" else CommunicationSync.error_code,
        )
    )


def syncs_due(session: Session, now: datetime, limit: int) -> Sequence[str]:
    return list(
        session.scalars(
            select(CommunicationSync.message_id)
            .where(
                or_(
                    (CommunicationSync.status == "pending")
                    & or_(
                        CommunicationSync.lease_until.is_(None),
                        CommunicationSync.lease_until < now,
                    ),
                    (CommunicationSync.status == "processing")
                    & (CommunicationSync.lease_until < now),
                )
            )
            .limit(limit)
        )
    )


def claim_inbound(session: Session, inbound_id: int, now: datetime, lease: timedelta) -> bool:
    return worklist.claim(session, InboundMessage, inbound_id, now, lease)


def inbound_due_for_relay(
    session: Session, now: datetime, stale_after: timedelta, limit: int
) -> Sequence[int]:
    """Inbound messages never handed to the queue, handed over long ago, or abandoned."""
    return worklist.due_for_relay(session, InboundMessage, now, stale_after, limit)


def mark_inbound_enqueued(session: Session, ids: Sequence[int], now: datetime) -> None:
    worklist.mark_enqueued(session, InboundMessage, ids, now)


def last_message_to(session: Session, address: str) -> PlannedMessage | None:
    """The most recent SMS we sent to ``address``: who the sender is, and what they answer."""
    return session.scalar(
        select(PlannedMessage)
        .where(
            PlannedMessage.address == address,
            PlannedMessage.channel == "sms",
            PlannedMessage.status.in_(SENT_STATUSES),
        )
        .order_by(PlannedMessage.sent_at.desc(), PlannedMessage.created_at.desc())
        .limit(1)
    )


def ledger_for_address(session: Session, channel: str, address: str) -> Sequence[LedgerEntry]:
    return list(
        session.scalars(
            select(LedgerEntry)
            .where(LedgerEntry.channel.in_((channel, "*")), LedgerEntry.address == address)
            .order_by(LedgerEntry.recorded_at, LedgerEntry.id)
        )
    )


def reply_by_key(session: Session, key: str) -> SmsReply | None:
    return session.scalar(select(SmsReply).where(SmsReply.key == key))


def settle_reply(
    session: Session, reply_id: str, taken_until: datetime, values: dict[str, Any]
) -> bool:
    """Settle a reply taken over after a crash, only if it is still ``sending`` under the
    lease taken over (``taken_until``); True when this call settled it."""
    result = session.execute(
        update(SmsReply)
        .where(
            SmsReply.id == reply_id,
            SmsReply.status == "sending",
            SmsReply.lease_until == taken_until,
        )
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def replies_for(session: Session, inbound_id: int) -> Sequence[SmsReply]:
    return list(
        session.scalars(
            select(SmsReply).where(SmsReply.inbound_id == inbound_id).order_by(SmsReply.created_at)
        )
    )


def open_inbox_items(session: Session, patient_ref: str, limit: int) -> Sequence[StaffInboxItem]:
    """A patient's open staff-inbox items, most urgent first."""
    return list(
        session.scalars(
            select(StaffInboxItem)
            .where(StaffInboxItem.status == "open", StaffInboxItem.patient_ref == patient_ref)
            .order_by(StaffInboxItem.priority.desc(), StaffInboxItem.created_at)
            .limit(limit)
        )
    )


def open_inbox_all_patients(
    session: Session, limit: int
) -> Sequence[tuple[StaffInboxItem, InboundMessage | None]]:
    """Open staff-inbox items across patients with their reply: urgent first, then oldest."""
    rows = session.execute(
        select(StaffInboxItem, InboundMessage)
        .outerjoin(InboundMessage, InboundMessage.id == StaffInboxItem.inbound_id)
        .where(StaffInboxItem.status == "open")
        .order_by(StaffInboxItem.priority.desc(), StaffInboxItem.created_at, StaffInboxItem.id)
        .limit(limit)
    )
    return [(item, inbound) for item, inbound in rows.tuples()]


def get_message(session: Session, message_id: str) -> PlannedMessage | None:
    return session.get(PlannedMessage, message_id)


def sync_attempts(session: Session, message_id: str) -> int:
    row = session.get(CommunicationSync, message_id)
    return row.attempts if row is not None else 0


def applied_receipts(session: Session, message_id: str) -> Sequence[DeliveryReceipt]:
    return list(
        session.scalars(
            select(DeliveryReceipt)
            .where(DeliveryReceipt.message_id == message_id, DeliveryReceipt.outcome == "applied")
            .order_by(DeliveryReceipt.id)
        )
    )


def inbox_for_patient(
    session: Session, patient_ref: str, limit: int
) -> Sequence[tuple[StaffInboxItem, InboundMessage | None]]:
    """A patient's staff-inbox items (open and handled) with the reply each came from,
    newest first."""
    rows = session.execute(
        select(StaffInboxItem, InboundMessage)
        .outerjoin(InboundMessage, InboundMessage.id == StaffInboxItem.inbound_id)
        .where(StaffInboxItem.patient_ref == patient_ref)
        .order_by(StaffInboxItem.created_at.desc(), StaffInboxItem.id.desc())
        .limit(limit)
    )
    return [(item, inbound) for item, inbound in rows.tuples()]


def mark_inbox_handled(
    session: Session, item_id: int, patient_ref: str, by: str | None, now: datetime
) -> bool:
    """Open → handled for one of the patient's items; False when it is not open (or not theirs)."""
    won = session.execute(
        update(StaffInboxItem)
        .where(
            StaffInboxItem.id == item_id,
            StaffInboxItem.patient_ref == patient_ref,
            StaffInboxItem.status == "open",
        )
        .values(status="handled", handled_at=now, handled_by=by)
        .returning(StaffInboxItem.id)
        .execution_options(synchronize_session=False)
    ).scalar_one_or_none()
    return won is not None


def assign_inbox_item(session: Session, item_id: int, patient_ref: str, to: str | None) -> bool:
    """Assign one of the patient's open items to a member of staff (``None``: unassign)."""
    won = session.execute(
        update(StaffInboxItem)
        .where(
            StaffInboxItem.id == item_id,
            StaffInboxItem.patient_ref == patient_ref,
            StaffInboxItem.status == "open",
        )
        .values(assigned_to=to)
        .returning(StaffInboxItem.id)
        .execution_options(synchronize_session=False)
    ).scalar_one_or_none()
    return won is not None
