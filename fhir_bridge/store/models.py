"""Database tables. The database is the source of truth; Celery only carries ids.

Every row that drives work (inbox notifications, planned messages) has a
status and a lease, so a crashed worker's work is picked up again by the
relay instead of being lost, and a unique key, so retries never double it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    CheckConstraint,
    DateTime,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every backend (SQLite stores naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSON, list[Any]: JSON}


class Subscription(Base):
    """A Subscription we created on the EHR, and how far we have caught up with it."""

    __tablename__ = "subscription"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    resource_type: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
    payload: Mapped[str] = mapped_column(String(16))
    criteria: Mapped[str] = mapped_column(Text)
    remote_id: Mapped[str | None] = mapped_column(String(128))
    endpoint: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="requested")
    heartbeat_period: Mapped[int] = mapped_column(Integer, default=0)
    events_through: Mapped[int] = mapped_column(Integer, default=0)
    good_through: Mapped[datetime | None]
    last_notification_at: Mapped[datetime | None]
    last_heartbeat_at: Mapped[datetime | None]
    last_checked_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (UniqueConstraint("resource_type", "kind", name="uq_subscription_type_kind"),)


class InboxNotification(Base):
    """A notification accepted from the EHR: stored before we answer 2xx."""

    __tablename__ = "inbox_notification"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    subscription_id: Mapped[str | None] = mapped_column(String(36))
    dedupe_key: Mapped[str] = mapped_column(String(255), unique=True)
    kind: Mapped[str] = mapped_column(String(32))
    body: Mapped[dict[str, Any] | None]
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    lease_until: Mapped[datetime | None]
    enqueued_at: Mapped[datetime | None]
    processed_at: Mapped[datetime | None]
    error_code: Mapped[str | None] = mapped_column(String(200))

    __table_args__ = (Index("ix_inbox_status", "status"),)


class ResourceState(Base):
    """The newest version of each EHR resource we have seen, raw JSON kept as sent."""

    __tablename__ = "resource_state"

    resource_type: Mapped[str] = mapped_column(String(64), primary_key=True)
    resource_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    version_id: Mapped[str | None] = mapped_column(String(64))
    last_updated: Mapped[datetime | None]
    patient_ref: Mapped[str | None] = mapped_column(String(200), index=True)
    body: Mapped[dict[str, Any]]
    stored_at: Mapped[datetime] = mapped_column(default=utcnow)


REASON_CANCELLED_BY_STAFF = "cancelled-by-staff"


class MessageStatus(StrEnum):
    """Where a planned message is: planned -> queued -> sending -> sent, or cancelled /
    withheld / failed / unknown (the provider may have it but we could not record it:
    never resent). Only ``fhir_bridge.outreach.lifecycle`` changes it."""

    PLANNED = "planned"
    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    WITHHELD = "withheld"
    CANCELLED = "cancelled"
    FAILED = "failed"
    UNKNOWN = "unknown"


class CommunicationStatus(StrEnum):
    """The message's Communication in the EHR: none due, pending (to write), written."""

    NONE = "none"
    PENDING = "pending"
    WRITTEN = "written"


def _one_of(column: str, values: type[StrEnum]) -> str:
    return f"{column} IN ({', '.join(repr(str(v)) for v in values)})"


class PlannedMessage(Base):
    """One outreach message from plan to delivery to its Communication in the EHR.

    ``status`` is a ``MessageStatus`` (a CHECK constraint holds the set); its transitions
    are the methods of ``fhir_bridge.outreach.lifecycle.MessageLifecycle``, never
    assignments elsewhere (a test walks the code base to keep it so).
    """

    __tablename__ = "planned_message"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    key: Mapped[str] = mapped_column(String(300), unique=True)
    rule: Mapped[str] = mapped_column(String(100))
    purpose: Mapped[str] = mapped_column(String(64))
    patient_ref: Mapped[str] = mapped_column(String(200), index=True)
    about: Mapped[list[Any]]
    send_at: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(16), default=MessageStatus.PLANNED.value)
    template: Mapped[str] = mapped_column(String(200))
    language: Mapped[str] = mapped_column(String(16))
    variables: Mapped[dict[str, Any]]
    sensitive: Mapped[bool] = mapped_column(default=False)
    trace: Mapped[dict[str, Any]]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    lease_until: Mapped[datetime | None]
    channel: Mapped[str | None] = mapped_column(String(16))
    address: Mapped[str | None] = mapped_column(String(320))
    subject_line: Mapped[str | None] = mapped_column(Text)
    text: Mapped[str | None] = mapped_column(Text)
    html: Mapped[str | None] = mapped_column(Text)
    consent_used: Mapped[list[Any] | None]
    provider: Mapped[str | None] = mapped_column(String(32))
    provider_message_id: Mapped[str | None] = mapped_column(String(128), index=True)
    delivery_status: Mapped[str | None] = mapped_column(String(32))
    sent_at: Mapped[datetime | None]
    reason: Mapped[str | None] = mapped_column(String(64))
    reason_detail: Mapped[str | None] = mapped_column(Text)
    communication_status: Mapped[str] = mapped_column(
        String(16), default=CommunicationStatus.NONE.value
    )
    communication_id: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    __table_args__ = (
        Index("ix_planned_due", "status", "send_at"),
        Index("ix_planned_writeback", "communication_status"),
        CheckConstraint(_one_of("status", MessageStatus), name="ck_planned_message_status"),
        CheckConstraint(
            _one_of("communication_status", CommunicationStatus),
            name="ck_planned_message_communication_status",
        ),
    )


class LedgerEntry(Base):
    """Local opt-in / opt-out record (SMS keywords, staff actions, provider signals)."""

    __tablename__ = "consent_ledger"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    patient_ref: Mapped[str | None] = mapped_column(String(200), index=True)
    channel: Mapped[str] = mapped_column(String(16))
    address: Mapped[str | None] = mapped_column(String(320), index=True)
    purpose: Mapped[str] = mapped_column(String(64), default="*")
    action: Mapped[str] = mapped_column(String(32))
    source: Mapped[str] = mapped_column(String(32))
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)


class Watermark(Base):
    """How far a catch-up search or the poller has read, per resource type."""

    __tablename__ = "watermark"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    value: Mapped[datetime]


# Two-way messaging (fhir_bridge.inbound): status callbacks, inbound SMS, replies.


class DeliveryReceipt(Base):
    """A provider status callback, stored once per (provider message, status) before we answer."""

    __tablename__ = "delivery_receipt"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    message_id: Mapped[str] = mapped_column(String(36), index=True)
    provider_message_id: Mapped[str] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(32))
    error_code: Mapped[str | None] = mapped_column(String(16))
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    outcome: Mapped[str] = mapped_column(String(16), default="pending")

    __table_args__ = (
        UniqueConstraint("provider_message_id", "status", name="uq_receipt_sid_status"),
    )


class CommunicationSync(Base):
    """A message whose Communication in the EHR must catch up with its delivery status."""

    __tablename__ = "communication_sync"

    message_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    lease_until: Mapped[datetime | None]
    requested_at: Mapped[datetime] = mapped_column(default=utcnow)
    done_at: Mapped[datetime | None]
    error_code: Mapped[str | None] = mapped_column(String(64))

    __table_args__ = (Index("ix_communication_sync_status", "status"),)


class InboundMessage(Base):
    """An inbound SMS, stored once per provider MessageSid before we answer the webhook."""

    __tablename__ = "inbound_message"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    provider_message_id: Mapped[str] = mapped_column(String(128), unique=True)
    from_address: Mapped[str] = mapped_column(String(64), index=True)
    to_address: Mapped[str | None] = mapped_column(String(64))
    body: Mapped[str] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    lease_until: Mapped[datetime | None]
    enqueued_at: Mapped[datetime | None]
    processed_at: Mapped[datetime | None]
    patient_ref: Mapped[str | None] = mapped_column(String(200))
    in_reply_to: Mapped[str | None] = mapped_column(String(36))
    intent: Mapped[str | None] = mapped_column(String(32))
    steps_done: Mapped[list[Any]] = mapped_column(default=list)
    error_code: Mapped[str | None] = mapped_column(String(64))

    __table_args__ = (Index("ix_inbound_status", "status"),)


class SmsReply(Base):
    """One reply SMS; the row is written before the provider call (exactly-once, like sends).

    status: pending -> sending -> sent, or withheld (no consent) / failed / unknown.
    """

    __tablename__ = "sms_reply"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    key: Mapped[str] = mapped_column(String(200), unique=True)
    inbound_id: Mapped[int] = mapped_column(Integer, index=True)
    kind: Mapped[str] = mapped_column(String(32))
    to_address: Mapped[str] = mapped_column(String(64))
    text: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    provider_message_id: Mapped[str | None] = mapped_column(String(128))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    lease_until: Mapped[datetime | None]
    error_code: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None]


class StaffInboxItem(Base):
    """Something a patient sent that a person at the clinic must read and act on."""

    __tablename__ = "staff_inbox_item"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    inbound_id: Mapped[int] = mapped_column(Integer, unique=True)
    patient_ref: Mapped[str | None] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(32))
    priority: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default="open")
    communication_ref: Mapped[str | None] = mapped_column(String(200))
    task_ref: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
