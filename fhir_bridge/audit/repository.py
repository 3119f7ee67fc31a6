"""All SQL of the ``audit_event`` table.

Pushing follows the project's lease-and-relay pattern: a row is claimed with a conditional
update (``pending`` with no live lease -> lease taken, attempts + 1), settled with another
(``written`` or ``rejected``), or released with a retry time in ``lease_until``.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from fhir_bridge.audit.events import summarize
from fhir_bridge.store.models import AuditEventRecord, AuditPushStatus

PENDING = AuditPushStatus.PENDING.value
WRITTEN = AuditPushStatus.WRITTEN.value
REJECTED = AuditPushStatus.REJECTED.value


def add(session: Session, resource: dict[str, Any], recorded: datetime) -> AuditEventRecord:
    """Store a built AuditEvent as ``pending``; its searchable columns come from the resource."""
    summary = summarize(resource)
    row = AuditEventRecord(
        id=str(uuid.uuid4()),
        recorded=recorded,
        type_code=summary.type_code,
        subtype_code=summary.subtype_code,
        action=summary.action,
        outcome=summary.outcome,
        agent_ref=summary.agent_ref,
        patient_ref=summary.patient_ref,
        resource=resource,
        push_status=PENDING,
        attempts=0,
    )
    session.add(row)
    session.flush()
    return row


def get(session: Session, audit_id: str) -> AuditEventRecord | None:
    return session.get(AuditEventRecord, audit_id)


def for_patient(session: Session, patient_ref: str, limit: int = 500) -> Sequence[AuditEventRecord]:
    """A patient's AuditEvents, newest first (the local copy, whatever the EHR did with it)."""
    return list(
        session.scalars(
            select(AuditEventRecord)
            .where(AuditEventRecord.patient_ref == patient_ref)
            .order_by(AuditEventRecord.recorded.desc(), AuditEventRecord.id)
            .limit(limit)
        )
    )


def claim(session: Session, audit_id: str, now: datetime, lease: timedelta) -> bool:
    """Take the push of a pending row whose lease (or retry time) has run out."""
    won = session.execute(
        update(AuditEventRecord)
        .where(
            AuditEventRecord.id == audit_id,
            AuditEventRecord.push_status == PENDING,
            or_(AuditEventRecord.lease_until.is_(None), AuditEventRecord.lease_until <= now),
        )
        .values(lease_until=now + lease, attempts=AuditEventRecord.attempts + 1)
        .returning(AuditEventRecord.id)
        .execution_options(synchronize_session=False)
    ).scalar_one_or_none()
    return won is not None


def settle(
    session: Session,
    audit_id: str,
    status: str,
    now: datetime,
    *,
    ehr_id: str | None = None,
    error: str | None = None,
) -> bool:
    """``pending`` -> ``written`` (with the EHR's id) or ``rejected`` (with the reason)."""
    won = session.execute(
        update(AuditEventRecord)
        .where(AuditEventRecord.id == audit_id, AuditEventRecord.push_status == PENDING)
        .values(
            push_status=status,
            ehr_id=ehr_id,
            push_error=error[:200] if error else None,
            pushed_at=now if status == WRITTEN else None,
            lease_until=None,
        )
        .returning(AuditEventRecord.id)
        .execution_options(synchronize_session=False)
    ).scalar_one_or_none()
    return won is not None


def release(session: Session, audit_id: str, retry_at: datetime, error: str) -> None:
    """Back to the relay at ``retry_at``, keeping the last (PHI-free) error."""
    session.execute(
        update(AuditEventRecord)
        .where(AuditEventRecord.id == audit_id, AuditEventRecord.push_status == PENDING)
        .values(lease_until=retry_at, push_error=error[:200])
        .execution_options(synchronize_session=False)
    )


def due_for_push(session: Session, now: datetime, limit: int) -> Sequence[str]:
    """Pending rows nobody holds, oldest first."""
    return list(
        session.scalars(
            select(AuditEventRecord.id)
            .where(
                AuditEventRecord.push_status == PENDING,
                or_(AuditEventRecord.lease_until.is_(None), AuditEventRecord.lease_until <= now),
            )
            .order_by(AuditEventRecord.recorded)
            .limit(limit)
        )
    )
