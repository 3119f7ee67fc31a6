"""Every query the outcome measures and ``/metrics`` read (all their SQL lives here).

Nothing returned names a patient: rows carry rule, channel, location reference, language,
day, status codes and times only. Messages are counted in SQL (one row per day and
dimension, however many messages); replies, unsubscribes and appointment outcomes are read
one row each (their volume is a fraction of the messages').

Days are UTC calendar days; a message counts on the day it was sent, or was due when it was
never sent.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final

from sqlalchemy import ColumnElement, case, func, literal, select
from sqlalchemy.orm import Session, aliased

from fhir_bridge.optout import SOURCE_EMAIL_UNSUBSCRIBE
from fhir_bridge.store.models import (
    CommunicationVersion,
    InboundMessage,
    InboxNotification,
    LedgerEntry,
    MessageStatus,
    PlannedMessage,
    ResourceState,
    StaffInboxItem,
)
from rules.model import PURPOSE_APPOINTMENT_REMINDER

SENT_STATUSES: Final = (MessageStatus.SENT.value, MessageStatus.UNKNOWN.value)
APPOINTMENT_OUTCOMES: Final = ("noshow", "fulfilled")
OPT_OUT: Final = "opt-out"
# How long before an appointment its reminders may have gone out.
REMINDER_LOOKBACK: Final = timedelta(days=90)


@dataclass(frozen=True)
class Dimensions:
    """What a message is counted under (no patient, no address)."""

    day: date
    rule: str
    channel: str | None
    location: str | None
    language: str


@dataclass(frozen=True)
class MessageCount:
    """How many messages of one day and dimension ended in one status."""

    dims: Dimensions
    status: str
    delivery_status: str | None
    reason: str | None
    count: int


@dataclass(frozen=True)
class ReplyFact:
    """One patient reply (or email unsubscribe) under the message it answers."""

    dims: Dimensions
    intent: str
    inbox_kind: str | None
    inbox_created_at: datetime | None
    handled_at: datetime | None


@dataclass(frozen=True)
class AppointmentOutcome:
    """One appointment that ended fulfilled or as a no-show, and whether we reminded."""

    start: str
    location: str | None
    status: str
    reminded: bool


def _dialect(session: Session) -> str:
    return session.get_bind().dialect.name


def _utc_day(session: Session, column: Any) -> ColumnElement[Any]:
    if _dialect(session) == "postgresql":
        return func.date(func.timezone("UTC", column))
    return func.date(column)


def _as_date(value: object) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


def _dims(row: Any) -> Dimensions:
    """The day, rule, channel, location and language columns of a result row."""
    return Dimensions(_as_date(row.day), row.rule, row.channel, row.location, row.language)


def _message_location(message: Any) -> ColumnElement[Any]:
    return message.trace["inputs"]["location"].as_string()


def _message_day(message: Any) -> ColumnElement[Any]:
    return func.coalesce(message.sent_at, message.send_at)


def message_counts(
    session: Session, since: datetime, until: datetime | None = None
) -> list[MessageCount]:
    """Messages per UTC day, rule, channel, location, language, status and reason."""
    when = _message_day(PlannedMessage)
    day = _utc_day(session, when).label("day")
    location = _message_location(PlannedMessage).label("location")
    keys = (
        day,
        PlannedMessage.rule,
        PlannedMessage.channel,
        location,
        PlannedMessage.language,
        PlannedMessage.status,
        PlannedMessage.delivery_status,
        PlannedMessage.reason,
    )
    query = select(*keys, func.count().label("n")).where(when >= since).group_by(*keys)
    if until is not None:
        query = query.where(when < until)
    return [
        MessageCount(
            dims=_dims(row),
            status=row.status,
            delivery_status=row.delivery_status,
            reason=row.reason,
            count=int(row.n),
        )
        for row in session.execute(query)
    ]


def _last_sent_before(channel: str, address: Any, moment: Any, outer: Any) -> Any:
    """The id of the last message sent on ``channel`` to ``address`` at or before ``moment``
    (columns of ``outer``, the row the subquery is correlated with)."""
    answered = aliased(PlannedMessage)
    return (
        select(answered.id)
        .where(
            answered.channel == channel,
            answered.address == address,
            answered.status.in_(SENT_STATUSES),
            answered.sent_at <= moment,
        )
        .order_by(answered.sent_at.desc())
        .limit(1)
        .correlate(outer)
        .scalar_subquery()
    )


def reply_facts(
    session: Session, since: datetime, until: datetime | None = None
) -> list[ReplyFact]:
    """Every classified SMS reply and every email unsubscribe, under the message answered.

    A reply answers the last SMS we sent to its number before it came in (how the inbound
    pipeline reads it), unless it names the message itself; an unsubscribe answers the last
    email sent to its address before it was recorded.
    """
    last_sms = _last_sent_before(
        "sms", InboundMessage.from_address, InboundMessage.received_at, InboundMessage
    )
    replies = (
        select(
            func.coalesce(InboundMessage.in_reply_to, last_sms).label("message_id"),
            InboundMessage.intent.label("intent"),
            StaffInboxItem.kind.label("inbox_kind"),
            StaffInboxItem.created_at.label("inbox_created_at"),
            StaffInboxItem.handled_at.label("handled_at"),
        )
        .outerjoin(StaffInboxItem, StaffInboxItem.inbound_id == InboundMessage.id)
        .where(InboundMessage.intent.is_not(None))
    )
    last_email = _last_sent_before(
        "email", LedgerEntry.address, LedgerEntry.recorded_at, LedgerEntry
    )
    unsubscribes = select(
        last_email.label("message_id"),
        literal(OPT_OUT).label("intent"),
        literal(None).label("inbox_kind"),
        literal(None).label("inbox_created_at"),
        literal(None).label("handled_at"),
    ).where(LedgerEntry.source == SOURCE_EMAIL_UNSUBSCRIBE, LedgerEntry.action == OPT_OUT)
    facts = replies.union_all(unsubscribes).subquery()
    message = aliased(PlannedMessage)
    when = _message_day(message)
    query = (
        select(
            _utc_day(session, when).label("day"),
            message.rule,
            message.channel,
            _message_location(message).label("location"),
            message.language,
            facts.c.intent,
            facts.c.inbox_kind,
            facts.c.inbox_created_at,
            facts.c.handled_at,
        )
        .join(message, message.id == facts.c.message_id)
        .where(when >= since)
    )
    if until is not None:
        query = query.where(when < until)
    return [
        ReplyFact(
            dims=_dims(row),
            intent=row.intent,
            inbox_kind=row.inbox_kind,
            inbox_created_at=_aware(row.inbox_created_at),
            handled_at=_aware(row.handled_at),
        )
        for row in session.execute(query)
    ]


def _aware(value: datetime | str | None) -> datetime | None:
    """The union's NULL columns lose their type on SQLite: read them back as UTC."""
    if value is None:
        return None
    parsed = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def appointment_outcomes(
    session: Session, since: datetime, until: datetime | None = None
) -> list[AppointmentOutcome]:
    """Appointments that ended fulfilled or no-show from ``since`` on (by their start), each
    with whether an appointment reminder about it was sent."""
    status = ResourceState.body["status"].as_string()
    start = ResourceState.body["start"].as_string()
    # ISO strings compare as text to the day; the exact cut is made on the parsed start.
    query = select(
        ResourceState.resource_id,
        status.label("status"),
        start.label("start"),
        ResourceState.body["participant"].label("participant"),
    ).where(
        ResourceState.resource_type == "Appointment",
        status.in_(APPOINTMENT_OUTCOMES),
        start >= since.date().isoformat(),
    )
    rows = list(session.execute(query))
    reminded = _reminded_appointments(session, since)
    outcomes = []
    for row in rows:
        started = _parse_instant(row.start)
        if started is None or started < since or (until is not None and started >= until):
            continue
        outcomes.append(
            AppointmentOutcome(
                start=row.start,
                location=_location_of(row.participant),
                status=row.status,
                reminded=f"Appointment/{row.resource_id}" in reminded,
            )
        )
    return outcomes


def _reminded_appointments(session: Session, since: datetime) -> set[str]:
    """``Appointment/<id>`` of every appointment a sent reminder was about."""
    query = select(PlannedMessage.about).where(
        PlannedMessage.purpose == PURPOSE_APPOINTMENT_REMINDER,
        PlannedMessage.status.in_(SENT_STATUSES),
        PlannedMessage.sent_at >= since - REMINDER_LOOKBACK,
    )
    return {str(ref) for about in session.scalars(query) for ref in about or ()}


def _parse_instant(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed


def _location_of(participants: object) -> str | None:
    for participant in participants if isinstance(participants, list) else ():
        actor = participant.get("actor") if isinstance(participant, dict) else None
        reference = actor.get("reference") if isinstance(actor, dict) else None
        if isinstance(reference, str) and "Location/" in reference:
            return reference[reference.index("Location/") :]
    return None


def location_names(session: Session, refs: Sequence[str]) -> dict[str, str]:
    """``Location.name`` of the places we hold, by reference (staff-facing labels)."""
    ids = [ref.partition("/")[2] for ref in refs if ref.startswith("Location/")]
    if not ids:
        return {}
    query = select(ResourceState.resource_id, ResourceState.body["name"].as_string()).where(
        ResourceState.resource_type == "Location", ResourceState.resource_id.in_(ids)
    )
    return {f"Location/{rid}": name for rid, name in session.execute(query) if name}


# Per-campaign outcomes (fhir_bridge.outcomes.campaigns). Rows carry a patient reference so
# recipients are counted once each; no address, name or text ever leaves these functions.


@dataclass(frozen=True)
class CampaignMessageFact:
    """One message of a campaign: where it ended, and when it was handed to the provider."""

    patient_ref: str
    status: str
    delivery_status: str | None
    reason: str | None
    sent_at: datetime | None


@dataclass(frozen=True)
class CampaignReplyFact:
    """An SMS reply from the number a campaign message went to, after it went."""

    patient_ref: str
    sent_at: datetime
    received_at: datetime
    intent: str | None
    answers_campaign: bool
    """The reply names this campaign's message (``in_reply_to``)."""
    answers_other: bool
    """The reply names another message (so it is that one's, not this campaign's)."""


@dataclass(frozen=True)
class BookingFact:
    """An appointment of a campaign recipient: its service type, status and creation time."""

    patient_ref: str
    status: str | None
    service_type: list[Any]
    created: datetime | None


def campaign_messages(session: Session, campaign_key_prefix: str) -> list[CampaignMessageFact]:
    """Every message whose key starts with ``campaign|<id>|`` (all its runs)."""
    query = select(
        PlannedMessage.patient_ref,
        PlannedMessage.status,
        PlannedMessage.delivery_status,
        PlannedMessage.reason,
        PlannedMessage.sent_at,
    ).where(PlannedMessage.key.startswith(campaign_key_prefix, autoescape=True))
    return [
        CampaignMessageFact(
            row.patient_ref, row.status, row.delivery_status, row.reason, _aware(row.sent_at)
        )
        for row in session.execute(query)
    ]


def campaign_replies(session: Session, campaign_key_prefix: str) -> list[CampaignReplyFact]:
    """Replies from each sent campaign message's number received after it was sent."""
    message = aliased(PlannedMessage)
    query = (
        select(
            message.patient_ref,
            message.sent_at,
            InboundMessage.received_at,
            InboundMessage.intent,
            (func.coalesce(InboundMessage.in_reply_to, "") == message.id).label("answers"),
            InboundMessage.in_reply_to.is_not(None).label("names_one"),
        )
        .join(InboundMessage, InboundMessage.from_address == message.address)
        .where(
            message.key.startswith(campaign_key_prefix, autoescape=True),
            message.channel == "sms",
            message.status.in_(SENT_STATUSES),
            message.sent_at.is_not(None),
            InboundMessage.received_at > message.sent_at,
        )
    )
    return [
        CampaignReplyFact(
            row.patient_ref,
            _aware(row.sent_at) or datetime.min.replace(tzinfo=UTC),
            _aware(row.received_at) or datetime.min.replace(tzinfo=UTC),
            row.intent,
            bool(row.answers),
            bool(row.names_one) and not row.answers,
        )
        for row in session.execute(query)
    ]


def bookings_of(session: Session, patient_refs: Sequence[str]) -> list[BookingFact]:
    """Appointments we hold of these patients (``Appointment.created``, else the EHR's
    last update, as the time it was booked)."""
    found: list[BookingFact] = []
    refs = sorted(set(patient_refs))
    for start in range(0, len(refs), 1000):
        query = select(
            ResourceState.patient_ref,
            ResourceState.body["status"].as_string().label("status"),
            ResourceState.body["serviceType"].label("service_type"),
            ResourceState.body["created"].as_string().label("created"),
            ResourceState.last_updated,
        ).where(
            ResourceState.resource_type == "Appointment",
            ResourceState.patient_ref.in_(refs[start : start + 1000]),
        )
        for row in session.execute(query):
            created = _parse_instant(row.created) or _aware(row.last_updated)
            kinds = row.service_type if isinstance(row.service_type, list) else []
            found.append(BookingFact(str(row.patient_ref), row.status, kinds, created))
    return found


# /metrics: totals and latency buckets computed at scrape time (see fhir_bridge.metrics).


def _seconds_between(session: Session, later: Any, earlier: Any) -> ColumnElement[Any]:
    if _dialect(session) == "postgresql":
        return func.extract("epoch", later - earlier)
    return (func.julianday(later) - func.julianday(earlier)) * 86400.0


@dataclass(frozen=True)
class Histogram:
    """Cumulative bucket counts (``le`` upper bounds, +Inf last), the count and the sum."""

    labels: tuple[str, ...]
    buckets: tuple[int, ...]
    count: int
    total: float


def _histograms(
    session: Session,
    seconds: ColumnElement[Any],
    label_columns: Sequence[Any],
    bounds: Sequence[float],
    where: Sequence[ColumnElement[bool]],
) -> list[Histogram]:
    value = (
        func.greatest(seconds, 0.0) if _dialect(session) == "postgresql" else func.max(seconds, 0.0)
    )
    bucket_columns = [
        func.sum(case((value <= bound, 1), else_=0)).label(f"b{i}")
        for i, bound in enumerate(bounds)
    ]
    query = (
        select(*label_columns, *bucket_columns, func.count().label("n"), func.sum(value).label("s"))
        .where(*where)
        .group_by(*label_columns)
    )
    found = []
    for row in session.execute(query):
        values = tuple(row)
        labels = tuple(str(v) for v in values[: len(label_columns)])
        counts = tuple(
            int(v or 0) for v in values[len(label_columns) : len(label_columns) + len(bounds)]
        )
        found.append(Histogram(labels, counts, int(row.n), float(row.s or 0.0)))
    return found


def ingest_latency(session: Session, bounds: Sequence[float]) -> list[Histogram]:
    """Notification received → processed (stored, planned), by notification kind."""
    return _histograms(
        session,
        _seconds_between(session, InboxNotification.processed_at, InboxNotification.received_at),
        [InboxNotification.kind],
        bounds,
        [InboxNotification.processed_at.is_not(None)],
    )


def delivery_latency(session: Session, bounds: Sequence[float]) -> list[Histogram]:
    """Message due → handed to the provider, by channel."""
    return _histograms(
        session,
        _seconds_between(session, PlannedMessage.sent_at, PlannedMessage.send_at),
        [PlannedMessage.channel],
        bounds,
        [PlannedMessage.sent_at.is_not(None), PlannedMessage.channel.is_not(None)],
    )


def writeback_latency(session: Session, bounds: Sequence[float]) -> list[Histogram]:
    """Message settled (sent, or decided when never sent) → its Communication written to the
    EHR (the first version we recorded with the EHR's id)."""
    first = (
        select(
            CommunicationVersion.identifier_value.label("message_id"),
            func.min(CommunicationVersion.recorded_at).label("written_at"),
        )
        .where(CommunicationVersion.ehr_id.is_not(None))
        .group_by(CommunicationVersion.identifier_value)
        .subquery()
    )
    settled = func.coalesce(PlannedMessage.sent_at, PlannedMessage.created_at)
    value = _seconds_between(session, first.c.written_at, settled)
    return _histograms(
        session,
        value,
        [],
        bounds,
        [PlannedMessage.id == first.c.message_id],
    )


def notification_totals(session: Session) -> list[tuple[str, str, int]]:
    """(kind, status, count) of every notification accepted."""
    query = select(InboxNotification.kind, InboxNotification.status, func.count()).group_by(
        InboxNotification.kind, InboxNotification.status
    )
    return [(kind, status, int(n)) for kind, status, n in session.execute(query)]


def message_totals(session: Session) -> list[tuple[str, str | None, str, int]]:
    """(rule, channel, status, count) of every message planned."""
    keys = (PlannedMessage.rule, PlannedMessage.channel, PlannedMessage.status)
    query = select(*keys, func.count()).group_by(*keys)
    return [(rule, channel, status, int(n)) for rule, channel, status, n in session.execute(query)]


def writeback_totals(session: Session) -> list[tuple[str, int]]:
    """(communication status, count) over messages that have or need a Communication."""
    query = select(PlannedMessage.communication_status, func.count()).group_by(
        PlannedMessage.communication_status
    )
    return [(status, int(n)) for status, n in session.execute(query)]


def queue_depths(session: Session, now: datetime) -> dict[str, int]:
    """Items waiting in each kind of work (the same sets as ``worklist.oldest_waiting``)."""
    from fhir_bridge.store.models import CommunicationSync, DeliveryReceipt
    from rules.caps import REASON_CAP_REACHED

    unfinished = ("pending", "processing")

    def count(model: Any, *where: ColumnElement[bool]) -> int:
        return int(session.scalar(select(func.count()).select_from(model).where(*where)) or 0)

    return {
        "inbox-notifications": count(InboxNotification, InboxNotification.status.in_(unfinished)),
        "messages-due": count(
            PlannedMessage,
            PlannedMessage.status.in_(("planned", "queued", "sending")),
            PlannedMessage.send_at <= now,
        ),
        "write-backs": count(
            PlannedMessage,
            PlannedMessage.communication_status == "pending",
            (PlannedMessage.reason.is_(None))
            | (PlannedMessage.reason != REASON_CAP_REACHED)
            | (PlannedMessage.send_at <= now),
        ),
        "inbound-sms": count(InboundMessage, InboundMessage.status.in_(unfinished)),
        "delivery-receipts": count(DeliveryReceipt, DeliveryReceipt.outcome == "pending"),
        "communication-syncs": count(CommunicationSync, CommunicationSync.status.in_(unfinished)),
    }
