"""Re-planning a patient's outreach whenever one of their resources changes.

The rules return the complete desired plan; here it is reconciled with what is
stored, by message key: new keys are inserted, vanished keys still pending are
cancelled, changed times are rescheduled. Messages already sent or withheld are
history and never touched, so re-planning any number of times is safe.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from fhir_bridge.outreach import repository
from fhir_bridge.store.models import REASON_CANCELLED_BY_STAFF, PlannedMessage
from fhir_bridge.sync import repository as state_repository
from rules.config import RulesConfig
from rules.engine import plan_for_patient
from rules.model import PatientSnapshot, Plan, SentRecord, WithheldMessage, is_lifecycle_reason
from rules.model import PlannedMessage as Planned

log = logging.getLogger(__name__)

Planner = Callable[[PatientSnapshot, RulesConfig, datetime], Plan]


def build_snapshot(
    session: Session, patient_ref: str, patient: dict[str, Any] | None
) -> PatientSnapshot:
    """Everything the rules may look at for one patient, from our store."""
    resources = [row.body for row in state_repository.resources_for_patient(session, patient_ref)]
    history = [
        SentRecord(key=m.key, rule=m.rule, purpose=m.purpose, send_at=m.sent_at or m.send_at)
        for m in repository.messages_for_patient(session, patient_ref)
        if m.status in repository.HISTORY_STATUSES
    ]
    return PatientSnapshot(
        patient_ref=patient_ref, patient=patient, resources=resources, history=history
    )


def replan_patient(
    session: Session,
    *,
    patient_ref: str,
    patient: dict[str, Any] | None,
    config: RulesConfig,
    now: datetime,
    planner: Planner = plan_for_patient,
) -> list[str]:
    """Reconcile stored messages with a fresh plan; returns ids of newly withheld messages."""
    plan = planner(build_snapshot(session, patient_ref, patient), config, now)
    existing = {m.key: m for m in repository.messages_for_patient(session, patient_ref)}
    wanted = {m.key: m for m in plan.messages}
    for key, message in wanted.items():
        row = existing.get(key)
        if row is None:
            session.add(new_row(message, now))
        elif row.status in ("planned", "queued") or (
            row.status == "cancelled" and row.reason != REASON_CANCELLED_BY_STAFF
        ):
            _reschedule(row, message)
    for key, row in existing.items():
        if key not in wanted and row.status in repository.OPEN_STATUSES:
            row.status = "cancelled"
            row.reason = "no-longer-planned"
            row.lease_until = None
            row.trace = {**row.trace, "cancelled_at": now.isoformat()}
    withheld_ids = []
    for withheld in plan.withheld:
        if is_lifecycle_reason(withheld.reason):
            continue
        row = existing.get(withheld.key)
        if row is None:
            row = _withheld_row(withheld, now)
            session.add(row)
        elif row.status in repository.OPEN_STATUSES:
            _mark_withheld(row, withheld.reason, withheld.detail, dict(withheld.trace))
        else:
            continue
        withheld_ids.append(row.id)
    session.flush()
    return withheld_ids


def new_row(message: Planned, now: datetime) -> PlannedMessage:
    """The stored form of a freshly planned message."""
    return PlannedMessage(
        id=str(uuid.uuid4()),
        key=message.key,
        rule=message.rule,
        purpose=message.purpose,
        patient_ref=message.patient_ref,
        about=list(message.about),
        send_at=message.send_at,
        status="planned",
        template=message.template,
        language=message.language,
        variables=dict(message.variables),
        sensitive=message.sensitive,
        trace=dict(message.trace),
        created_at=now,
        updated_at=now,
        communication_status="none",
    )


def _reschedule(row: PlannedMessage, message: Planned) -> None:
    if row.send_at != message.send_at or row.status == "cancelled":
        log.info("message rescheduled", extra={"message_id": row.id})
    row.status = "planned"
    row.reason = None
    row.lease_until = None
    row.send_at = message.send_at
    row.about = list(message.about)
    row.template = message.template
    row.language = message.language
    row.variables = dict(message.variables)
    row.sensitive = message.sensitive
    row.trace = dict(message.trace)


def _withheld_row(withheld: WithheldMessage, now: datetime) -> PlannedMessage:
    row = PlannedMessage(
        id=str(uuid.uuid4()),
        key=withheld.key,
        rule=withheld.rule,
        purpose=withheld.purpose,
        patient_ref=withheld.patient_ref,
        about=list(withheld.about),
        send_at=now,
        template="",
        language="",
        variables={},
        trace={},
        created_at=now,
        updated_at=now,
    )
    _mark_withheld(row, withheld.reason, withheld.detail, dict(withheld.trace))
    return row


def _mark_withheld(row: PlannedMessage, reason: str, detail: str, trace: dict[str, Any]) -> None:
    """Withheld is final and audited: a not-done Communication will be written for it."""
    row.status = "withheld"
    row.reason = reason
    row.reason_detail = detail
    row.trace = {**(row.trace or {}), "withheld": trace}
    row.lease_until = None
    row.communication_status = "pending"
