"""Recording AuditEvents (inside the caller's transaction) and pushing them to the EHR.

``record`` adds the row in the transaction of what it audits: the action and its audit
commit together or not at all. Nothing is enqueued: the relay (``fhir_bridge.tasks.relay``)
lists pending rows, which are committed by then, and a ``push_audit_event`` task writes
each one. ``push`` holds no transaction during the EHR call: one short transaction claims
the row with a lease, the EHR is called with none open, a second records the result.

What the EHR says decides the row's fate: created -> ``written`` with its id; refused (a
4xx other than 401/408/429, or not supported) -> ``rejected`` with the status and issue
codes, kept and searchable here; unavailable -> back to ``pending`` with a growing retry
time (the one retry layer), ``rejected`` after ``MAX_PUSH_ATTEMPTS``. The create is not
conditional (R4 AuditEvent has no identifier to make it so): a worker killed between the
EHR's answer and the second transaction may push one AuditEvent twice, never lose it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

from sqlalchemy.orm import Session, sessionmaker

from fhir_bridge.audit import events, repository
from fhir_bridge.fhir.errors import EhrError, EhrNotSupported
from fhir_bridge.settings import get_settings
from fhir_bridge.store.db import transaction
from fhir_bridge.store.models import InboundMessage

if TYPE_CHECKING:
    from fhir_bridge.inbound.resources import ConsentChange

log = logging.getLogger(__name__)

MAX_PUSH_ATTEMPTS: Final = 100
MAX_RETRY_DELAY: Final = timedelta(hours=1)
_TRANSIENT_CLIENT_STATUSES: Final = frozenset({401, 408, 429})


def record(session: Session, resource: dict[str, Any]) -> str:
    """Keep a built AuditEvent in the caller's transaction; returns its id."""
    recorded = datetime.fromisoformat(str(resource["recorded"]))
    row = repository.add(session, resource, recorded)
    log.info(
        "audit event recorded",
        extra={"id": row.id, "type": row.subtype_code or row.type_code, "outcome": row.outcome},
    )
    return row.id


def observer() -> events.Observer:
    """fhir-bridge as the process's settings describe it (read on first use)."""
    settings = get_settings()
    return events.Observer(base_url=settings.public_base_url, ehr_base_url=settings.ehr_base_url)


def record_consent_change(
    session: Session, change: ConsentChange, action: str, now: datetime
) -> str:
    """An opt-in/out from an SMS keyword: the patient asked for the Consent written for it
    (identified as the STOP/START path identifies it, whether or not it is written yet)."""
    return record(
        session,
        events.patient_change(
            observer=observer(),
            recorded=now,
            action="C",
            requestor_ref=change.patient_ref,
            patient_ref=change.patient_ref,
            target=events.identified("Consent", change.identifier_system, change.identifier_value),
            what=f"sms-{action}",
        ),
    )


def record_reply_handled(
    session: Session, row: InboundMessage, identifier_system: str, now: datetime
) -> str:
    """An inbound SMS acted on: the Communication recorded for it (or, for an unknown sender,
    the message by its identifier), the intent as the change's code."""
    communication = next(
        (
            str(step).partition("=")[2]
            for step in row.steps_done
            if str(step).startswith("communication=")
        ),
        None,
    )
    target = (
        {"reference": communication}
        if communication
        else events.identified("Communication", identifier_system, row.provider_message_id)
    )
    return record(
        session,
        events.patient_change(
            observer=observer(),
            recorded=now,
            action="C",
            requestor_ref=row.patient_ref,
            patient_ref=row.patient_ref,
            target=target,
            what=f"reply:{row.intent or 'unknown'}",
        ),
    )


@dataclass(frozen=True)
class PushDeps:
    """Collaborators of the push; ``ehr`` is None when pushing is off (or no EHR is set)."""

    factory: sessionmaker[Session]
    ehr: Any
    clock: Callable[[], datetime]
    lease: timedelta
    retry_after: timedelta


def push(deps: PushDeps, audit_id: str) -> str:
    """Write one pending AuditEvent to the EHR: written / rejected / retry / skipped / off."""
    if deps.ehr is None:
        return "off"
    now = deps.clock()
    with transaction(deps.factory) as session:
        if not repository.claim(session, audit_id, now, deps.lease):
            return "skipped"
        row = repository.get(session, audit_id)
        assert row is not None
        resource, attempts = dict(row.resource), row.attempts
    # The row is claimed and released: the EHR call below holds no database transaction.
    try:
        stored = deps.ehr.create(resource)
    except EhrError as error:
        return _failed(deps, audit_id, error, attempts)
    with transaction(deps.factory) as session:
        repository.settle(
            session, audit_id, repository.WRITTEN, deps.clock(), ehr_id=stored.get("id")
        )
    log.info(
        "audit event written to the EHR", extra={"id": audit_id, "remote_id": stored.get("id")}
    )
    return "written"


def _failed(deps: PushDeps, audit_id: str, error: EhrError, attempts: int) -> str:
    reason = str(error)
    now = deps.clock()
    refused = refused_by_ehr(error)
    with transaction(deps.factory) as session:
        if refused or attempts >= MAX_PUSH_ATTEMPTS:
            repository.settle(session, audit_id, repository.REJECTED, now, error=reason)
        else:
            repository.release(session, audit_id, now + retry_delay(deps, attempts), reason)
    log.warning(
        "audit event kept locally" if refused else "audit event push deferred",
        extra={"id": audit_id, "error": type(error).__name__, "status": error.status},
    )
    return "rejected" if refused or attempts >= MAX_PUSH_ATTEMPTS else "retry"


def refused_by_ehr(error: EhrError) -> bool:
    """The EHR will not take this AuditEvent however often we ask (vs. is unavailable now)."""
    if isinstance(error, EhrNotSupported):
        return True
    status = error.status
    return status is not None and 400 <= status < 500 and status not in _TRANSIENT_CLIENT_STATUSES


def retry_delay(deps: PushDeps, attempts: int) -> timedelta:
    """Doubling from the relay interval, at most an hour."""
    factor = 2 ** min(max(attempts - 1, 0), 16)
    return min(deps.retry_after * factor, MAX_RETRY_DELAY)


def due(deps: PushDeps, limit: int = 500) -> Sequence[str]:
    """Pending AuditEvents for the relay to hand to push tasks (none when pushing is off)."""
    if deps.ehr is None:
        return []
    with transaction(deps.factory) as session:
        return repository.due_for_push(session, deps.clock(), limit)
