"""Re-planning a patient's outreach whenever one of their resources changes.

The rules return the complete desired plan; here it is reconciled with what is
stored, by message key: new keys are inserted, changed times are rescheduled,
decisions against a message are recorded, and keys the plan no longer mentions
at all are cancelled (``no-longer-planned``, no Communication: the appointment
or order behind them is gone or merged). Messages already sent and final
decisions are history and never touched, so re-planning any number of times,
with notifications in any order, ends in the same rows.

Frequency caps (issue #8.8). A message that loses to a cap is stored as
``withheld`` / ``cap-reached`` with ``communication_status`` ``pending`` and, as
``send_at``, the time it would have gone, never cancelled. Until that time the
decision is *provisional*: every re-plan re-decides it, and if the competing
message goes away (its appointment was cancelled) the row returns to
``planned`` and nothing is written to the EHR. Once the send time has come the
decision is final: re-plans leave it alone and the relay writes the not-done
Communication (``repository.pending_writebacks`` holds a cap decision until its
``send_at``). So auditors see a not-done Communication exactly for the
reminders the patient did not get because of a cap, and staff see the pending
decision, with the message that took the slot (``caps.taken_by``), before then.
A provisional cap whose message disappears from the plan altogether is
cancelled like any other pending message.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from fhir_bridge.outreach import repository
from fhir_bridge.outreach.lifecycle import (
    CommunicationStatus,
    MessageLifecycle,
    MessageStatus,
    new_planned,
    new_withheld,
)
from fhir_bridge.outreach.snapshot import ReferenceSource, live_snapshot
from fhir_bridge.store.models import REASON_CANCELLED_BY_STAFF, PlannedMessage
from rules.campaigns import owned_by_other_planner
from rules.caps import REASON_CAP_REACHED
from rules.config import RulesConfig
from rules.engine import plan_for_patient
from rules.model import PatientSnapshot, Plan, WithheldMessage, is_lifecycle_reason
from rules.model import PlannedMessage as Planned

log = logging.getLogger(__name__)

Planner = Callable[[PatientSnapshot, RulesConfig, datetime], Plan]


def replan_patient(
    session: Session,
    *,
    patient_ref: str,
    patient: dict[str, Any] | None,
    config: RulesConfig,
    now: datetime,
    planner: Planner = plan_for_patient,
    source: ReferenceSource | None = None,
    due_now: list[str] | None = None,
) -> list[str]:
    """Reconcile stored messages with a fresh plan; returns ids of newly withheld messages.

    ``due_now`` collects the ids of planned messages whose send time has come, for the
    caller to claim and enqueue after its commit (no poll in between).

    Order matters only for clarity, not for the outcome: wanted keys first (a
    provisional cap decision may come back to ``planned``), then decisions
    against messages (an open row that now loses to a cap is withheld, never
    cancelled), then keys the plan no longer mentions.

    Every change of an existing row is a conditional transition (``MessageLifecycle``)
    that re-checks, in the database, that the row may still be re-planned: a message a
    worker moved to ``sending`` since it was read here is left alone, never put back.
    """
    lifecycle = MessageLifecycle(session)
    rows = repository.messages_for_patient(session, patient_ref)
    snapshot = live_snapshot(session, patient_ref, patient, source=source, now=now, messages=rows)
    plan = planner(snapshot, config, now)
    existing = {m.key: m for m in rows}
    wanted = {m.key: m for m in plan.messages}
    decided = {w.key: w for w in plan.withheld if not is_lifecycle_reason(w.reason)}
    for key, message in wanted.items():
        row = existing.get(key)
        if row is None:
            row = new_row(message, now)
            session.add(row)
            log_planned("planned", row)
        elif _may_replan(row, now):
            _reschedule(lifecycle, row, message, now)
        else:
            continue
        if due_now is not None and message.send_at <= now:
            due_now.append(row.id)
    withheld_ids = []
    for key, withheld in decided.items():
        row = existing.get(key)
        if row is None:
            row = _withheld_row(withheld, now)
            session.add(row)
        elif _may_replan(row, now):
            unchanged = (row.status, row.reason) == (MessageStatus.WITHHELD, withheld.reason)
            if not _mark_withheld(lifecycle, row, withheld, now) or unchanged:
                continue
        else:
            continue
        withheld_ids.append(row.id)
        log_withheld(row)
    for key, row in existing.items():
        if key in wanted or key in decided or owned_by_other_planner(key):
            continue  # staff answers and campaigns are not the rules' to cancel
        if row.status in repository.OPEN_STATUSES or is_provisional_cap(row, now):
            _cancel(lifecycle, row, now)
    session.flush()
    return withheld_ids


def log_planned(verb: str, row: PlannedMessage) -> None:
    """One INFO line per planning decision: ids, rule and times only (no PHI)."""
    trace = row.trace or {}
    local = str(trace.get("send_at_local") or row.send_at.isoformat())
    offset = str(trace.get("offset") or trace.get("notice_before") or "-")
    about = row.about[0] if row.about else row.patient_ref.split("/")[0]
    log.info(
        "%s message %s (%s) for %s at %s (%s)",
        verb,
        row.id,
        row.rule,
        about,
        local,
        offset,
        extra={
            "message_id": row.id,
            "rule": row.rule,
            "resource": about,
            "send_at": local,
            "offset": offset,
        },
    )


def log_withheld(row: PlannedMessage, logger: logging.Logger = log) -> None:
    """One INFO line per decision not to send: the message id and the reason code."""
    logger.info(
        "withheld message %s: %s",
        row.id,
        row.reason,
        extra={"message_id": row.id, "rule": row.rule, "reason": row.reason},
    )


def is_provisional_cap(row: PlannedMessage, now: datetime) -> bool:
    """A cap decision whose send time has not come yet: re-decided by every re-plan."""
    return (
        row.status == MessageStatus.WITHHELD
        and row.reason == REASON_CAP_REACHED
        and row.communication_status == CommunicationStatus.PENDING
        and row.send_at > now
    )


def _may_replan(row: PlannedMessage, now: datetime) -> bool:
    """Still open to a new decision: pending, provisionally capped, or cancelled by us."""
    if row.status in repository.OPEN_STATUSES or is_provisional_cap(row, now):
        return True
    return row.status == MessageStatus.CANCELLED and row.reason != REASON_CANCELLED_BY_STAFF


def _cancel(lifecycle: MessageLifecycle, row: PlannedMessage, now: datetime) -> None:
    """Nothing calls for this message any more; no Communication (nothing was withheld)."""
    lifecycle.cancel_if_open(
        row.id,
        reason="no-longer-planned",
        trace={**row.trace, "cancelled_at": now.isoformat()},
        now=now,
        including_provisional_cap=True,
    )


def new_row(message: Planned, now: datetime) -> PlannedMessage:
    """The stored form of a freshly planned message."""
    return new_planned(
        id=str(uuid.uuid4()),
        key=message.key,
        rule=message.rule,
        purpose=message.purpose,
        patient_ref=message.patient_ref,
        about=list(message.about),
        send_at=message.send_at,
        template=message.template,
        language=message.language,
        variables=dict(message.variables),
        sensitive=message.sensitive,
        trace=dict(message.trace),
        created_at=now,
        updated_at=now,
    )


def _reschedule(
    lifecycle: MessageLifecycle, row: PlannedMessage, message: Planned, now: datetime
) -> None:
    changed = row.send_at != message.send_at or row.status == MessageStatus.CANCELLED
    fields: dict[str, Any] = {
        "send_at": message.send_at,
        "about": list(message.about),
        "template": message.template,
        "language": message.language,
        "variables": dict(message.variables),
        "sensitive": message.sensitive,
        "trace": dict(message.trace),
    }
    target = {
        "status": MessageStatus.PLANNED,
        "reason": None,
        "reason_detail": None,
        "communication_status": CommunicationStatus.NONE,
        "lease_until": None,
        **fields,
    }
    if _already(row, target):
        return
    if lifecycle.replan(row.id, now=now, fields=fields) and changed:
        log_planned("rescheduled", row)


def _withheld_row(withheld: WithheldMessage, now: datetime) -> PlannedMessage:
    """Final at once, except a cap decision (see ``_mark_withheld``)."""
    return new_withheld(
        reason=withheld.reason,
        detail=withheld.detail,
        id=str(uuid.uuid4()),
        key=withheld.key,
        rule=withheld.rule,
        purpose=withheld.purpose,
        patient_ref=withheld.patient_ref,
        about=list(withheld.about),
        send_at=_withheld_send_at(withheld) or now,
        template="",
        language="",
        variables={},
        trace={"withheld": dict(withheld.trace)},
        created_at=now,
        updated_at=now,
    )


def _mark_withheld(
    lifecycle: MessageLifecycle, row: PlannedMessage, withheld: WithheldMessage, now: datetime
) -> bool:
    """Audited: a not-done Communication will be written for it. False if the row moved on.

    Final at once, except a cap decision, which is final at the time the message
    would have gone (stored as ``send_at``; see the module docstring).
    """
    trace = {**(row.trace or {}), "withheld": dict(withheld.trace)}
    fields: dict[str, Any] = {"about": list(withheld.about)}
    send_at = _withheld_send_at(withheld)
    if send_at is not None:
        fields["send_at"] = send_at
    target = {
        "status": MessageStatus.WITHHELD,
        "reason": withheld.reason,
        "reason_detail": withheld.detail,
        "trace": trace,
        "lease_until": None,
        "communication_status": CommunicationStatus.PENDING,
        **fields,
    }
    if _already(row, target):
        return True
    return lifecycle.withhold_on_replan(
        row.id,
        now=now,
        reason=withheld.reason,
        detail=withheld.detail,
        trace=trace,
        fields=fields,
    )


def _withheld_send_at(withheld: WithheldMessage) -> datetime | None:
    if withheld.reason == REASON_CAP_REACHED and withheld.send_at is not None:
        return withheld.send_at
    return None


def _already(row: PlannedMessage, target: dict[str, Any]) -> bool:
    """The row already holds every value (no write, as the ORM would not write one)."""
    return all(getattr(row, name) == value for name, value in target.items())
