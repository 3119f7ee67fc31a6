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
    # Notifications the worker rejected (full FHIR validation happens there, not in the API).
    notifications_rejected: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Re-requests in a row while the EHR keeps it in error (backoff; 0 once active again).
    rerequested_at: Mapped[datetime | None]
    rerequest_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # How many Subscriptions we have created on the EHR for this row. A new one numbers its
    # events from 1 again (and an EHR that lost its state may even reuse the id), so the
    # epoch is part of each notification's dedupe key.
    remote_epoch: Mapped[int] = mapped_column(Integer, default=0, server_default="0")

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
    # The contiguous event numbers a topic notification carries (NULL otherwise): a gap in
    # ``subscription.events_through`` that stored notifications will fill is not a gap.
    event_first: Mapped[int | None] = mapped_column(Integer)
    event_last: Mapped[int | None] = mapped_column(Integer)

    __table_args__ = (
        Index("ix_inbox_status", "status"),
        # The relay derives each Subscription's last notification / heartbeat from here.
        Index("ix_inbox_subscription_received", "subscription_id", "received_at"),
        Index("ix_inbox_subscription_events", "subscription_id", "event_last"),
    )


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
    # When the relay last handed the write-back to the queue (it resends only after a lease).
    writeback_enqueued_at: Mapped[datetime | None]
    # Retention (fhir_bridge.audit.retention): the body's SHA-256 once its text is purged.
    body_sha256: Mapped[str | None] = mapped_column(String(64))
    body_purged_at: Mapped[datetime | None]
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


class CampaignStatus(StrEnum):
    """draft -> approved -> running <-> paused -> done | cancelled (and draft/approved ->
    cancelled). Only ``fhir_bridge.campaigns.repository.CampaignLifecycle`` changes it."""

    DRAFT = "draft"
    APPROVED = "approved"
    RUNNING = "running"
    PAUSED = "paused"
    DONE = "done"
    CANCELLED = "cancelled"


class Campaign(Base):
    """A health-tip or preventive-care campaign, or an urgent broadcast (issue #14).

    Its messages are ``planned_message`` rows keyed ``campaign|<id>|<run>|<patient>``;
    ``audience`` is the audience definition as approved (JSON), never a patient list.
    """

    __tablename__ = "campaign"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(32))
    purpose: Mapped[str] = mapped_column(String(64))
    audience: Mapped[dict[str, Any]]
    templates: Mapped[list[Any]]
    cadence_days: Mapped[int | None] = mapped_column(Integer)
    ends_at: Mapped[datetime | None]
    priority: Mapped[str] = mapped_column(String(16), default="routine")
    emergency: Mapped[bool] = mapped_column(default=False)
    cancels_appointments: Mapped[bool] = mapped_column(default=False)
    status: Mapped[str] = mapped_column(String(16), default=CampaignStatus.DRAFT.value)
    drafted_by: Mapped[str] = mapped_column(String(200))
    approved_by: Mapped[str | None] = mapped_column(String(200))
    runs: Mapped[int] = mapped_column(Integer, default=0)
    next_run_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    approved_at: Mapped[datetime | None]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        CheckConstraint(_one_of("status", CampaignStatus), name="ck_campaign_status"),
        CheckConstraint("priority IN ('routine', 'alert')", name="ck_campaign_priority"),
        CheckConstraint(
            "kind IN ('health-tips', 'preventive-care', 'broadcast')", name="ck_campaign_kind"
        ),
    )


class CampaignRun(Base):
    """One planning pass of a campaign: how many were planned and withheld (no names)."""

    __tablename__ = "campaign_run"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    campaign_id: Mapped[str] = mapped_column(String(36), index=True)
    run: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
    audience: Mapped[int] = mapped_column(Integer, default=0)
    planned: Mapped[int] = mapped_column(Integer, default=0)
    withheld: Mapped[int] = mapped_column(Integer, default=0)

    __table_args__ = (UniqueConstraint("campaign_id", "run", name="uq_campaign_run"),)


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


class CommunicationVersion(Base):
    """Every version of a Communication we wrote (or would write) to the EHR, JSON as sent.

    ``resource_id`` is our own id (derived from the business identifier); the read-only FHIR
    API (``fhir_bridge.fhir_api``) serves these rows, ``_history`` included.
    """

    __tablename__ = "communication_version"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    resource_id: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer)
    identifier_system: Mapped[str] = mapped_column(String(255))
    identifier_value: Mapped[str] = mapped_column(String(255))
    body: Mapped[dict[str, Any]]
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)
    ehr_id: Mapped[str | None] = mapped_column(String(128))
    ehr_version: Mapped[str | None] = mapped_column(String(64))
    # Retention: when the payload text was removed from ``body`` (its SHA-256 stays here).
    body_sha256: Mapped[str | None] = mapped_column(String(64))
    body_purged_at: Mapped[datetime | None]

    __table_args__ = (
        UniqueConstraint("resource_id", "version", name="uq_communication_version"),
        Index("ix_communication_version_identifier", "identifier_system", "identifier_value"),
    )


class CommunicationCurrent(Base):
    """The newest version of each Communication, with the columns its search sorts on.

    ``seq`` orders Communications by first appearance; ``sent_sort`` is ``sent`` or, for a
    Communication never sent, the earliest instant (keyset paging needs a non-null key).
    """

    __tablename__ = "communication_current"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    resource_id: Mapped[str] = mapped_column(String(64), unique=True)
    version: Mapped[int] = mapped_column(Integer)
    sent: Mapped[datetime | None]
    sent_sort: Mapped[datetime]
    last_updated: Mapped[datetime]

    __table_args__ = (
        Index("ix_communication_current_sent", "sent_sort", "seq"),
        Index("ix_communication_current_updated", "last_updated"),
    )


class CommunicationToken(Base):
    """One searchable token or reference of a Communication's newest version."""

    __tablename__ = "communication_token"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    resource_id: Mapped[str] = mapped_column(String(64), index=True)
    param: Mapped[str] = mapped_column(String(32))
    system: Mapped[str] = mapped_column(String(255), default="")
    value: Mapped[str] = mapped_column(String(255))

    __table_args__ = (Index("ix_communication_token_lookup", "param", "value"),)


class ClientAssertion(Base):
    """A client assertion's ``jti`` seen at our token endpoint: each is accepted once."""

    __tablename__ = "client_assertion"

    client_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    jti: Mapped[str] = mapped_column(String(255), primary_key=True)
    expires_at: Mapped[datetime]


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
    # Retention (fhir_bridge.audit.retention): the body's SHA-256 once its text is purged.
    body_sha256: Mapped[str | None] = mapped_column(String(64))
    body_purged_at: Mapped[datetime | None]

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
    handled_at: Mapped[datetime | None]
    handled_by: Mapped[str | None] = mapped_column(String(200))
    assigned_to: Mapped[str | None] = mapped_column(String(200))


class StaffSessionRecord(Base):
    """One launched staff panel (EHR or standalone launch), shared by every API process.

    ``id`` is the SHA-256 of the per-launch handle in the tab's URLs (the handle itself is
    never stored); ``access_token`` is the EHR token encrypted (``smart_app.sessions``).
    """

    __tablename__ = "staff_session"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    patient_ref: Mapped[str | None] = mapped_column(String(200))
    encounter_ref: Mapped[str | None] = mapped_column(String(200))
    fhir_user: Mapped[str] = mapped_column(String(200))
    scope: Mapped[str] = mapped_column(Text)
    access_token: Mapped[str] = mapped_column(Text)
    csrf_token: Mapped[str] = mapped_column(String(64))
    browser_binding: Mapped[str | None] = mapped_column(String(64))
    banner: Mapped[dict[str, Any] | None]
    created_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]
    expires_at: Mapped[datetime] = mapped_column(index=True)


class PendingLaunchRecord(Base):
    """A SMART launch between the redirect to the EHR and its callback (single use).

    Keyed by the SHA-256 of ``state``; the PKCE verifier is stored encrypted and never
    leaves the server, so the callback needs no cookie (works in a cross-site frame).
    """

    __tablename__ = "smart_pending_launch"

    state_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    code_verifier: Mapped[str] = mapped_column(Text)
    token_endpoint: Mapped[str] = mapped_column(Text)
    issuer: Mapped[str | None] = mapped_column(Text)
    browser_binding: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(index=True)


class StaffConsentAction(Base):
    """A staff opt-in / opt-out recorded from the panel, and its Consent in the EHR.

    The ledger rows it adds take effect at once; this row is the outbox for the EHR
    ``Consent`` (``ehr_status`` pending -> written), retried by the relay. The reason
    stays here: it is never sent to the patient nor written to the EHR.
    """

    __tablename__ = "staff_consent_action"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    patient_ref: Mapped[str] = mapped_column(String(200), index=True)
    channel: Mapped[str] = mapped_column(String(16))
    address: Mapped[str | None] = mapped_column(String(320))
    action: Mapped[str] = mapped_column(String(32))
    purposes: Mapped[list[Any]]
    performer: Mapped[str | None] = mapped_column(String(200))
    reason_code: Mapped[str] = mapped_column(String(64))
    reason_text: Mapped[str | None] = mapped_column(Text)
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)
    ehr_status: Mapped[str] = mapped_column(String(16), default="pending")
    consent_ref: Mapped[str | None] = mapped_column(String(200))

    __table_args__ = (Index("ix_staff_consent_ehr_status", "ehr_status"),)


class AuditPushStatus(StrEnum):
    """An AuditEvent in the EHR: pending (to write), written, or rejected (kept here only)."""

    PENDING = "pending"
    WRITTEN = "written"
    REJECTED = "rejected"


class AuditEventRecord(Base):
    """One R4 AuditEvent (IHE BALP), kept here first; ``fhir_bridge.audit`` pushes it to the EHR.

    The row is the record: written in the transaction of what it audits, searchable by its
    columns, the resource JSON as built and validated. ``push_status`` is an
    ``AuditPushStatus``; a rejected row keeps the EHR's refusal in ``push_error`` (status and
    issue codes only).
    """

    __tablename__ = "audit_event"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    recorded: Mapped[datetime]
    type_code: Mapped[str] = mapped_column(String(64))
    subtype_code: Mapped[str | None] = mapped_column(String(64))
    action: Mapped[str | None] = mapped_column(String(1))
    outcome: Mapped[str] = mapped_column(String(2))
    agent_ref: Mapped[str | None] = mapped_column(String(200), index=True)
    patient_ref: Mapped[str | None] = mapped_column(String(200), index=True)
    resource: Mapped[dict[str, Any]]
    push_status: Mapped[str] = mapped_column(String(16), default=AuditPushStatus.PENDING.value)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    lease_until: Mapped[datetime | None]
    ehr_id: Mapped[str | None] = mapped_column(String(128))
    push_error: Mapped[str | None] = mapped_column(String(200))
    pushed_at: Mapped[datetime | None]

    __table_args__ = (
        Index("ix_audit_event_push", "push_status", "recorded"),
        Index("ix_audit_event_recorded", "recorded"),
        CheckConstraint(_one_of("push_status", AuditPushStatus), name="ck_audit_event_push_status"),
    )


class ReconciliationRun(Base):
    """One comparison of our Communications with the EHR's (``fhir-bridge audit reconcile``).

    ``status``: ``ok``, ``differences`` (different or unknown found, or a missing one not
    written again), ``system-of-record`` (the EHR takes no Communication writes: nothing to
    compare) or ``failed`` (the EHR could not be read; ``error`` says why, without PHI).
    """

    __tablename__ = "reconciliation_run"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
    since: Mapped[datetime | None]
    trigger: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(24))
    held: Mapped[int] = mapped_column(Integer, default=0)
    matched: Mapped[int] = mapped_column(Integer, default=0)
    missing: Mapped[int] = mapped_column(Integer, default=0)
    rewritten: Mapped[int] = mapped_column(Integer, default=0)
    different: Mapped[int] = mapped_column(Integer, default=0)
    unknown: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(String(200))

    __table_args__ = (Index("ix_reconciliation_run_started", "started_at"),)
