"""All SQL of reconciliation, export and retention (``fhir-bridge audit …``).

Reads go in pages (keyset on a sequence or id) or stream with ``yield_per`` (a server-side
cursor on PostgreSQL), so memory stays flat however much is held. Every change is a
conditional statement that names the state it expects, so a run racing the pipeline (or
another run) changes nothing it should not.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.orm import Session

from fhir_bridge.store.models import (
    AuditEventRecord,
    CommunicationCurrent,
    CommunicationStatus,
    CommunicationSync,
    CommunicationToken,
    CommunicationVersion,
    DeliveryReceipt,
    InboundMessage,
    MessageStatus,
    PlannedMessage,
    ReconciliationRun,
    SmsReply,
)

# Messages still moving: planning, delivery or write-back may yet change them.
IN_FLIGHT_STATUSES = (
    MessageStatus.PLANNED.value,
    MessageStatus.QUEUED.value,
    MessageStatus.SENDING.value,
)
INBOUND_DONE = ("done", "failed")
_Row = TypeVar("_Row")
REPLY_SETTLED = ("sent", "withheld", "failed", "unknown")


# Reconciliation ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Held:
    """The newest version of one Communication we hold."""

    seq: int
    resource_id: str
    identifier_system: str
    identifier_value: str
    body: dict[str, Any]
    ehr_id: str | None
    body_purged: bool


def held_page(session: Session, since: datetime | None, after_seq: int, limit: int) -> list[Held]:
    """Up to ``limit`` current versions after ``after_seq`` (sent, or recorded, since ``since``)."""
    statement = (
        select(CommunicationCurrent.seq, CommunicationVersion)
        .join(
            CommunicationVersion,
            and_(
                CommunicationVersion.resource_id == CommunicationCurrent.resource_id,
                CommunicationVersion.version == CommunicationCurrent.version,
            ),
        )
        .where(CommunicationCurrent.seq > after_seq)
        .order_by(CommunicationCurrent.seq)
        .limit(limit)
    )
    if since is not None:
        statement = statement.where(_since(since))
    return [
        Held(
            seq=seq,
            resource_id=row.resource_id,
            identifier_system=row.identifier_system,
            identifier_value=row.identifier_value,
            body=dict(row.body),
            ehr_id=row.ehr_id,
            body_purged=row.body_purged_at is not None,
        )
        for seq, row in session.execute(statement)
    ]


def _since(since: datetime) -> Any:
    return or_(
        CommunicationCurrent.sent >= since,
        and_(CommunicationCurrent.sent.is_(None), CommunicationCurrent.last_updated >= since),
    )


def held_values(session: Session, system: str, values: Sequence[str]) -> set[str]:
    """Which of these identifier values (in ``system``) we hold a Communication for."""
    if not values:
        return set()
    return set(
        session.scalars(
            select(CommunicationVersion.identifier_value)
            .where(
                CommunicationVersion.identifier_system == system,
                CommunicationVersion.identifier_value.in_(list(values)),
            )
            .distinct()
        )
    )


def request_rewrite(session: Session, message_id: str) -> bool:
    """A written message's Communication is due again (the EHR lost it); True if this won."""
    won = session.execute(
        update(PlannedMessage)
        .where(
            PlannedMessage.id == message_id,
            PlannedMessage.communication_status == CommunicationStatus.WRITTEN.value,
        )
        .values(communication_status=CommunicationStatus.PENDING.value, writeback_enqueued_at=None)
        .returning(PlannedMessage.id)
        .execution_options(synchronize_session=False)
    ).scalar_one_or_none()
    return won is not None


def is_message(session: Session, message_id: str) -> bool:
    return session.get(PlannedMessage, message_id) is not None


def start_run(session: Session, started_at: datetime, since: datetime | None, trigger: str) -> int:
    row = ReconciliationRun(
        started_at=started_at, since=since, trigger=trigger, status="running", held=0
    )
    for name in ("matched", "missing", "rewritten", "different", "unknown"):
        setattr(row, name, 0)
    session.add(row)
    session.flush()
    return row.id


def finish_run(
    session: Session, run_id: int, finished_at: datetime, status: str, counts: dict[str, int]
) -> None:
    session.execute(
        update(ReconciliationRun)
        .where(ReconciliationRun.id == run_id)
        .values(finished_at=finished_at, status=status, **counts)
    )


def fail_run(session: Session, run_id: int, finished_at: datetime, error: str) -> None:
    session.execute(
        update(ReconciliationRun)
        .where(ReconciliationRun.id == run_id)
        .values(finished_at=finished_at, status="failed", error=error[:200])
    )


def last_run(session: Session) -> ReconciliationRun | None:
    return session.scalars(
        select(ReconciliationRun)
        .where(ReconciliationRun.finished_at.is_not(None))
        .order_by(ReconciliationRun.started_at.desc(), ReconciliationRun.id.desc())
        .limit(1)
    ).first()


# Export -------------------------------------------------------------------------------------


def communications_between(
    session: Session, since: datetime, until: datetime, chunk: int = 500
) -> Iterator[tuple[CommunicationVersion, PlannedMessage | None]]:
    """Current versions sent (or, never sent, recorded) in [since, until), streamed."""
    statement = (
        select(CommunicationVersion, PlannedMessage)
        .join(
            CommunicationCurrent,
            and_(
                CommunicationVersion.resource_id == CommunicationCurrent.resource_id,
                CommunicationVersion.version == CommunicationCurrent.version,
            ),
        )
        .outerjoin(PlannedMessage, PlannedMessage.id == CommunicationVersion.identifier_value)
        .where(_communication_between(since, until))
        .order_by(CommunicationCurrent.seq)
        .execution_options(yield_per=chunk)
    )
    yield from session.execute(statement).tuples()


def count_communications_between(session: Session, since: datetime, until: datetime) -> int:
    return _count(session, CommunicationCurrent, _communication_between(since, until))


def _communication_between(since: datetime, until: datetime) -> Any:
    """Sent in [since, until), or never sent and last updated in it."""
    return or_(
        and_(CommunicationCurrent.sent >= since, CommunicationCurrent.sent < until),
        and_(
            CommunicationCurrent.sent.is_(None),
            CommunicationCurrent.last_updated >= since,
            CommunicationCurrent.last_updated < until,
        ),
    )


def audit_events_between(
    session: Session, since: datetime, until: datetime, chunk: int = 500
) -> Iterator[AuditEventRecord]:
    statement = (
        select(AuditEventRecord)
        .where(*_audit_events_between(since, until))
        .order_by(AuditEventRecord.recorded, AuditEventRecord.id)
        .execution_options(yield_per=chunk)
    )
    yield from session.scalars(statement)


def count_audit_events_between(session: Session, since: datetime, until: datetime) -> int:
    return _count(session, AuditEventRecord, *_audit_events_between(since, until))


def _audit_events_between(since: datetime, until: datetime) -> tuple[Any, ...]:
    return (AuditEventRecord.recorded >= since, AuditEventRecord.recorded < until)


# Retention: bodies --------------------------------------------------------------------------


def _message_settled() -> Any:
    return and_(
        PlannedMessage.status.not_in(IN_FLIGHT_STATUSES),
        PlannedMessage.communication_status != CommunicationStatus.PENDING.value,
        ~select(CommunicationSync.message_id)
        .where(
            CommunicationSync.message_id == PlannedMessage.id,
            CommunicationSync.status == "pending",
        )
        .exists(),
    )


def _message_body_kept(horizon: datetime) -> tuple[Any, ...]:
    return (
        PlannedMessage.body_purged_at.is_(None),
        PlannedMessage.created_at < horizon,
        PlannedMessage.updated_at < horizon,
        _message_settled(),
    )


def messages_with_bodies(session: Session, horizon: datetime, limit: int) -> list[PlannedMessage]:
    """Settled messages created before ``horizon`` whose body is not purged yet."""
    order = (PlannedMessage.created_at, PlannedMessage.id)
    return _first(session, PlannedMessage, _message_body_kept(horizon), order, limit)


def purge_message_body(
    session: Session, message_id: str, digest: str, trace: dict[str, Any], now: datetime
) -> bool:
    """Blank one settled message's free text, keeping the digest; False if it moved meanwhile."""
    won = session.execute(
        update(PlannedMessage)
        .where(PlannedMessage.id == message_id, PlannedMessage.body_purged_at.is_(None))
        .where(_message_settled())
        .values(
            text=None,
            html=None,
            subject_line=None,
            address=None,
            reason_detail=None,
            variables={},
            trace=trace,
            body_sha256=digest,
            body_purged_at=now,
        )
        .returning(PlannedMessage.id)
        .execution_options(synchronize_session=False)
    ).scalar_one_or_none()
    return won is not None


def count_messages_with_bodies(session: Session, horizon: datetime) -> int:
    return _count(session, PlannedMessage, *_message_body_kept(horizon))


def _inbound_body_kept(horizon: datetime) -> tuple[Any, ...]:
    return (
        InboundMessage.body_purged_at.is_(None),
        InboundMessage.received_at < horizon,
        InboundMessage.status.in_(INBOUND_DONE),
    )


def inbound_with_bodies(session: Session, horizon: datetime, limit: int) -> list[InboundMessage]:
    order = (InboundMessage.id,)
    return _first(session, InboundMessage, _inbound_body_kept(horizon), order, limit)


def purge_inbound_body(session: Session, inbound_id: int, digest: str, now: datetime) -> bool:
    won = session.execute(
        update(InboundMessage)
        .where(
            InboundMessage.id == inbound_id,
            InboundMessage.body_purged_at.is_(None),
            InboundMessage.status.in_(INBOUND_DONE),
        )
        .values(body="", from_address="", body_sha256=digest, body_purged_at=now)
        .returning(InboundMessage.id)
        .execution_options(synchronize_session=False)
    ).scalar_one_or_none()
    return won is not None


def count_inbound_with_bodies(session: Session, horizon: datetime) -> int:
    return _count(session, InboundMessage, *_inbound_body_kept(horizon))


def _version_body_kept(horizon: datetime) -> tuple[Any, ...]:
    return (
        CommunicationVersion.body_purged_at.is_(None),
        CommunicationVersion.recorded_at < horizon,
    )


def versions_with_bodies(
    session: Session, horizon: datetime, limit: int
) -> list[CommunicationVersion]:
    order = (CommunicationVersion.id,)
    return _first(session, CommunicationVersion, _version_body_kept(horizon), order, limit)


def purge_version_body(
    session: Session, version_id: int, body: dict[str, Any], digest: str, now: datetime
) -> None:
    session.execute(
        update(CommunicationVersion)
        .where(CommunicationVersion.id == version_id, CommunicationVersion.body_purged_at.is_(None))
        .values(body=body, body_sha256=digest, body_purged_at=now)
    )


def count_versions_with_bodies(session: Session, horizon: datetime) -> int:
    return _count(session, CommunicationVersion, *_version_body_kept(horizon))


# Retention: records -------------------------------------------------------------------------


@dataclass(frozen=True)
class RecordCounts:
    messages: int
    inbound: int
    replies: int
    receipts: int
    communications: int
    audit_events: int
    runs: int

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


def _old_messages(horizon: datetime) -> Any:
    return and_(
        PlannedMessage.created_at < horizon,
        PlannedMessage.updated_at < horizon,
        _message_settled(),
    )


def _old_communications(horizon: datetime) -> Any:
    return CommunicationCurrent.last_updated < horizon


def count_old_records(session: Session, horizon: datetime) -> RecordCounts:
    return RecordCounts(
        messages=_count(session, PlannedMessage, _old_messages(horizon)),
        inbound=_count(
            session,
            InboundMessage,
            InboundMessage.received_at < horizon,
            InboundMessage.status.in_(INBOUND_DONE),
        ),
        replies=_count(
            session, SmsReply, SmsReply.created_at < horizon, SmsReply.status.in_(REPLY_SETTLED)
        ),
        receipts=_count(
            session,
            DeliveryReceipt,
            DeliveryReceipt.received_at < horizon,
            DeliveryReceipt.outcome != "pending",
        ),
        communications=_count(session, CommunicationCurrent, _old_communications(horizon)),
        audit_events=_count(
            session,
            AuditEventRecord,
            AuditEventRecord.recorded < horizon,
            AuditEventRecord.push_status != "pending",
        ),
        runs=_count(session, ReconciliationRun, ReconciliationRun.started_at < horizon),
    )


def delete_old_records(session: Session, horizon: datetime, limit: int) -> RecordCounts:
    """Delete up to ``limit`` rows of each kind past ``horizon`` (never one in flight)."""
    message_ids = list(
        session.scalars(select(PlannedMessage.id).where(_old_messages(horizon)).limit(limit))
    )
    resource_ids = list(
        session.scalars(
            select(CommunicationCurrent.resource_id)
            .where(_old_communications(horizon))
            .limit(limit)
        )
    )
    messages = _delete_ids(
        session, PlannedMessage, PlannedMessage.id, message_ids, _old_messages(horizon)
    )
    _delete_ids(session, CommunicationSync, CommunicationSync.message_id, message_ids)
    communications = _delete_ids(
        session, CommunicationCurrent, CommunicationCurrent.resource_id, resource_ids
    )
    _delete_ids(session, CommunicationToken, CommunicationToken.resource_id, resource_ids)
    _delete_ids(session, CommunicationVersion, CommunicationVersion.resource_id, resource_ids)
    return RecordCounts(
        messages=messages,
        inbound=_delete_where(
            session,
            InboundMessage,
            InboundMessage.id,
            limit,
            InboundMessage.received_at < horizon,
            InboundMessage.status.in_(INBOUND_DONE),
        ),
        replies=_delete_where(
            session,
            SmsReply,
            SmsReply.id,
            limit,
            SmsReply.created_at < horizon,
            SmsReply.status.in_(REPLY_SETTLED),
        ),
        receipts=_delete_where(
            session,
            DeliveryReceipt,
            DeliveryReceipt.id,
            limit,
            DeliveryReceipt.received_at < horizon,
            DeliveryReceipt.outcome != "pending",
        ),
        communications=communications,
        audit_events=_delete_where(
            session,
            AuditEventRecord,
            AuditEventRecord.id,
            limit,
            AuditEventRecord.recorded < horizon,
            AuditEventRecord.push_status != "pending",
        ),
        runs=_delete_where(
            session,
            ReconciliationRun,
            ReconciliationRun.id,
            limit,
            ReconciliationRun.started_at < horizon,
        ),
    )


def _delete_ids(session: Session, table: Any, column: Any, ids: Iterable[Any], *still: Any) -> int:
    """Delete these rows, each only if it still meets ``still`` (re-checked, not assumed)."""
    ids = list(ids)
    if not ids:
        return 0
    result = session.execute(
        delete(table).where(column.in_(ids), *still).execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def _delete_where(session: Session, table: Any, key: Any, limit: int, *conditions: Any) -> int:
    ids = list(session.scalars(select(key).where(*conditions).limit(limit)))
    return _delete_ids(session, table, key, ids, *conditions)


def _first(
    session: Session,
    model: type[_Row],
    conditions: Sequence[Any],
    order: Sequence[Any],
    limit: int,
) -> list[_Row]:
    """The first ``limit`` rows of ``model`` meeting ``conditions``, in ``order``."""
    return list(session.scalars(select(model).where(*conditions).order_by(*order).limit(limit)))


def _count(session: Session, table: Any, *conditions: Any) -> int:
    return session.scalar(select(func.count()).select_from(table).where(*conditions)) or 0
