"""Retention: message bodies kept ``FHIR_BRIDGE_RETAIN_BODIES_DAYS``, records
``FHIR_BRIDGE_RETAIN_RECORDS_DAYS`` (six years by default: HIPAA documentation retention).

Past the body horizon a settled message keeps what an audit needs (ids, times, status,
reasons, rule, purpose, template, language, channel, provider ids, consent used) and a
SHA-256 of its body; its text, HTML, subject line, address, template variables, the free
text of its reason and of its trace are blanked. Replies lose their text and sender
number; Communication versions lose ``payload`` and ``topic``. Past the record horizon
the rows go. A row still in flight (being planned, sent or written back, a reply not yet
handled, an AuditEvent not yet pushed) is never touched, whatever its age.

Each run changes rows in short transactions of at most ``BATCH`` rows and ends with one
AuditEvent (through ``fhir_bridge.audit.service.record``) that says what it did, in counts.
A dry run only counts and records nothing.
"""

from __future__ import annotations

import getpass
import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal, TypeVar

from sqlalchemy.orm import Session, sessionmaker

from fhir_bridge.audit import events
from fhir_bridge.audit import records_repository as repo
from fhir_bridge.audit.service import record
from fhir_bridge.store.db import transaction
from fhir_bridge.store.models import CommunicationVersion, PlannedMessage

log = logging.getLogger(__name__)
Row = TypeVar("Row")

BATCH: Final = 200
OPERATION_SYSTEM: Final = "urn:fhir-bridge:audit-operation"
APPLICATION_ACTIVITY: Final = {
    "system": events.DCM,
    "code": "110100",
    "display": "Application Activity",
}
EXPORT: Final = {"system": events.DCM, "code": "110106", "display": "Export"}


@dataclass(frozen=True)
class RetentionPolicy:
    bodies_days: int
    records_days: int

    def horizons(self, now: datetime) -> tuple[datetime, datetime]:
        return now - timedelta(days=self.bodies_days), now - timedelta(days=self.records_days)


@dataclass
class PurgeResult:
    dry_run: bool
    body_horizon: datetime
    record_horizon: datetime
    bodies: dict[str, int] = field(default_factory=dict)
    deleted: dict[str, int] = field(default_factory=dict)
    audit_event_id: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "body_horizon": self.body_horizon.isoformat(),
            "record_horizon": self.record_horizon.isoformat(),
            "bodies_blanked": self.bodies,
            "records_deleted": self.deleted,
            "audit_event": self.audit_event_id,
        }


def purge(
    factory: sessionmaker[Session],
    policy: RetentionPolicy,
    clock: Callable[[], datetime],
    observer: events.Observer,
    *,
    dry_run: bool = False,
    requestor: str | None = None,
) -> PurgeResult:
    """Blank bodies past the body horizon, delete records past the record horizon."""
    now = clock()
    body_horizon, record_horizon = policy.horizons(now)
    result = PurgeResult(dry_run, body_horizon, record_horizon)
    if dry_run:
        with transaction(factory) as session:
            result.bodies = {
                "messages": repo.count_messages_with_bodies(session, body_horizon),
                "replies": repo.count_inbound_with_bodies(session, body_horizon),
                "communication_versions": repo.count_versions_with_bodies(session, body_horizon),
            }
            result.deleted = repo.count_old_records(session, record_horizon).as_dict()
        return result
    # Records first: what is deleted need not be blanked.
    result.deleted = _delete_records(factory, record_horizon)
    result.bodies = {
        "messages": _purge_messages(factory, body_horizon, now),
        "replies": _purge_inbound(factory, body_horizon, now),
        "communication_versions": _purge_versions(factory, body_horizon, now),
    }
    with transaction(factory) as session:
        result.audit_event_id = record(
            session,
            operation_event(
                observer=observer,
                recorded=clock(),
                operation="purge",
                event_type=APPLICATION_ACTIVITY,
                action="D",
                requestor=requestor,
                details={
                    **{f"blanked-{k}": v for k, v in result.bodies.items()},
                    **{f"deleted-{k}": v for k, v in result.deleted.items()},
                    "body-horizon": body_horizon.isoformat(),
                    "record-horizon": record_horizon.isoformat(),
                },
            ),
        )
    log.info("retention purge done", extra={"id": result.audit_event_id})
    return result


def _delete_records(factory: sessionmaker[Session], horizon: datetime) -> dict[str, int]:
    totals: dict[str, int] = {}
    while True:
        with transaction(factory) as session:
            counts = repo.delete_old_records(session, horizon, BATCH).as_dict()
        for name, count in counts.items():
            totals[name] = totals.get(name, 0) + count
        if not any(counts.values()):
            return totals


def _purge_messages(factory: sessionmaker[Session], horizon: datetime, now: datetime) -> int:
    return _purge_in_batches(
        factory,
        lambda session: repo.messages_with_bodies(session, horizon, BATCH),
        lambda session, row: repo.purge_message_body(
            session, row.id, message_digest(row), codes_only(row.trace or {}), now
        ),
    )


def _purge_inbound(factory: sessionmaker[Session], horizon: datetime, now: datetime) -> int:
    return _purge_in_batches(
        factory,
        lambda session: repo.inbound_with_bodies(session, horizon, BATCH),
        lambda session, row: repo.purge_inbound_body(session, row.id, digest(row.body), now),
    )


def _purge_versions(factory: sessionmaker[Session], horizon: datetime, now: datetime) -> int:
    def purge(session: Session, row: CommunicationVersion) -> bool:
        body, text = without_body(row.body)
        repo.purge_version_body(session, row.id, body, digest(text), now)
        return True

    return _purge_in_batches(
        factory, lambda session: repo.versions_with_bodies(session, horizon, BATCH), purge
    )


def _purge_in_batches(
    factory: sessionmaker[Session],
    batch: Callable[[Session], Sequence[Row]],
    purge: Callable[[Session, Row], bool],
) -> int:
    """Blank rows a ``BATCH`` per transaction until a short batch; how many were blanked."""
    done = 0
    while True:
        with transaction(factory) as session:
            rows = batch(session)
            for row in rows:
                done += purge(session, row)
        if len(rows) < BATCH:
            return done


def digest(text: str | None) -> str:
    return hashlib.sha256((text or "").encode("utf-8")).hexdigest()


def message_digest(row: PlannedMessage) -> str:
    """SHA-256 of what the patient received: subject line, text and HTML, in that order."""
    parts = [row.subject_line or "", row.text or "", row.html or ""]
    return digest("\x1f".join(parts))


def without_body(resource: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """A Communication without ``payload`` and ``topic``, and the text they held."""
    texts = [str((resource.get("topic") or {}).get("text") or "")]
    texts += [str(p.get("contentString") or "") for p in resource.get("payload") or []]
    kept = {k: v for k, v in resource.items() if k not in ("payload", "topic")}
    return kept, "\x1f".join(texts)


def codes_only(value: Any) -> Any:
    """A trace with its free text removed: strings with whitespace (or long) are dropped;
    codes, references, numbers, booleans and instants stay."""
    if isinstance(value, dict):
        kept = {str(k): codes_only(v) for k, v in value.items()}
        return {k: v for k, v in kept.items() if v is not _DROPPED}
    if isinstance(value, list):
        return [v for v in (codes_only(item) for item in value) if v is not _DROPPED]
    if isinstance(value, str) and (len(value) > 64 or any(c.isspace() for c in value)):
        return _DROPPED
    return value


_DROPPED: Final = object()


def operation_event(
    *,
    observer: events.Observer,
    recorded: datetime,
    operation: str,
    event_type: dict[str, str],
    action: Literal["C", "R", "U", "D", "E"],
    requestor: str | None,
    details: dict[str, object],
    outcome: str = events.OUTCOME_SUCCESS,
) -> dict[str, Any]:
    """An AuditEvent for one of fhir-bridge's own audit operations (purge, export,
    reconcile): who ran it (the operating-system account, or the scheduler), what it did in
    counts (``entity.detail``), never a value from a record."""
    server = {
        "type": {"coding": [dict(events.SOURCE_ROLE)]},
        "who": observer.reference(),
        "requestor": requestor is None,
        "network": {"address": observer.base_url, "type": "5"},
    }
    agents: list[dict[str, Any]] = [server]
    if requestor is not None:
        agents.insert(
            0,
            {
                "type": {"coding": [{"system": events.PARTICIPATION, "code": "AUT"}]},
                "who": {"identifier": {"system": "urn:fhir-bridge:os-user", "value": requestor}},
                "requestor": True,
            },
        )
    resource: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "type": dict(event_type),
        "subtype": [{"system": OPERATION_SYSTEM, "code": operation, "display": operation}],
        "action": action,
        "recorded": recorded.astimezone(UTC).isoformat(timespec="milliseconds"),
        "outcome": outcome,
        "source": {
            "site": observer.base_url,
            "observer": observer.reference(),
            "type": [{"system": events.SOURCE_TYPE, "code": "4", "display": "Application Server"}],
        },
        "agent": agents,
        "entity": [
            {
                "what": {"identifier": {"system": OPERATION_SYSTEM, "value": operation}},
                "type": {"system": events.ENTITY_TYPE, "code": "2", "display": "System Object"},
                "description": f"fhir-bridge audit {operation}",
                "detail": [{"type": k, "valueString": str(v)} for k, v in details.items()],
            }
        ],
    }
    return events.validated(resource)


def os_user() -> str | None:
    """Who runs a command (the operating-system account), for the AuditEvent's requestor."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return None
