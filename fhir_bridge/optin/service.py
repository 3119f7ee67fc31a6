"""Inviting patients to health tips by SMS, and what a YES from a number answers.

``invite_patients`` reads each Patient and their Consents from the EHR first (no database
transaction open), then decides with :func:`rules.optin.plan_invitation` in one short
transaction and stores the invitation as a planned message (a key re-planning leaves
alone, :func:`rules.optin.is_invitation`); one due now is claimed and handed to delivery
after the commit. Delivery checks everything again at send time and the write-back records
a Communication for it, like every message.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from fhir_bridge.fhir.errors import EhrError, EhrNotFound
from fhir_bridge.inbound import repository as inbound_repository
from fhir_bridge.optin import repository
from fhir_bridge.outreach import repository as outreach
from fhir_bridge.outreach.planning import new_row
from fhir_bridge.runtime import Runtime
from rules.consent.ledger import ACTION_OPT_OUT
from rules.keywords import STOP_HOLDS_AGAINST_YES
from rules.model import PatientSnapshot
from rules.optin import SKIP_INVITED_RECENTLY, invitation_open, plan_invitation

log = logging.getLogger(__name__)

SKIP_UNREADABLE = "ehr-unreadable"
SKIP_NOT_FOUND = "patient-not-found"
SKIP_NOT_A_PATIENT = "not-a-patient-reference"


@dataclass
class InviteSummary:
    """What one ``invite`` run did: counts only, never who."""

    invited: int = 0
    sending_now: int = 0
    skipped: Counter[str] = field(default_factory=Counter)

    def as_json(self) -> dict[str, Any]:
        return {
            "invited": self.invited,
            "sending_now": self.sending_now,
            "skipped": dict(sorted(self.skipped.items())),
        }


def invite_patients(rt: Runtime, patient_refs: Iterable[str]) -> InviteSummary:
    """Invite each patient (duplicates once) who may be invited; see the module docstring."""
    from fhir_bridge.tasks import unit_of_work  # the tasks module imports the API app

    summary = InviteSummary()
    period = timedelta(days=rt.settings.optin_invite_period_days)
    for patient_ref in dict.fromkeys(ref.strip() for ref in patient_refs if ref.strip()):
        resource_type, _, patient_id = patient_ref.partition("/")
        if resource_type != "Patient" or not patient_id or "/" in patient_id:
            summary.skipped[SKIP_NOT_A_PATIENT] += 1
            continue
        try:
            patient, consents = _read_ehr(rt, patient_id, patient_ref)
        except EhrNotFound:
            summary.skipped[SKIP_NOT_FOUND] += 1
            continue
        except EhrError:
            summary.skipped[SKIP_UNREADABLE] += 1
            continue
        addresses = [t["value"] for t in patient.get("telecom") or [] if t.get("value")]
        now = rt.clock()
        sending = False
        try:
            with unit_of_work(rt.sessions) as (session, after):
                ledger = [
                    outreach.as_consent_entry(entry)
                    for entry in outreach.ledger_for(session, patient_ref, addresses)
                ]
                decision = plan_invitation(
                    PatientSnapshot(patient_ref, patient, ()),
                    consents,
                    ledger,
                    rt.rules,
                    now,
                    last_invited_at=repository.last_invited_at(session, patient_ref),
                    period=period,
                )
                if decision.message is None:
                    summary.skipped[decision.skipped or "not-invited"] += 1
                    continue
                row = new_row(decision.message, now)
                session.add(row)
                session.flush()
                if row.send_at <= now and outreach.claim_batch(
                    session, now, rt.lease, ids=[row.id]
                ):
                    after.add("fhir_bridge.deliver", row.id)
                    sending = True
                message_id = row.id
        except IntegrityError:  # invited already today (the same key): nothing new
            summary.skipped[SKIP_INVITED_RECENTLY] += 1
            continue
        summary.invited += 1
        summary.sending_now += sending
        log.info("health-tips invitation planned", extra={"message_id": message_id})
    return summary


def _read_ehr(
    rt: Runtime, patient_id: str, patient_ref: str
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    patient = dict(rt.ehr.read("Patient", patient_id))
    consents = list(rt.ehr.search_all("Consent", {"patient": patient_ref, "_count": "100"}))
    return patient, consents


@dataclass(frozen=True)
class YesContext:
    """What a YES from a number can mean: an invitation to the same patient still open,
    and whether the number's newest consent word is a STOP younger than
    :data:`rules.keywords.STOP_HOLDS_AGAINST_YES`."""

    invitation_open: bool
    stopped_recently: bool


def yes_context(
    session: Session,
    *,
    address: str,
    patient_ref: str | None,
    received_at: datetime,
    validity: timedelta,
) -> YesContext:
    """Read inside the inbound step's short transaction (no EHR call)."""
    entries = inbound_repository.ledger_for_address(session, "sms", address)
    last = entries[-1] if entries else None
    stopped_recently = (
        last is not None
        and last.action == ACTION_OPT_OUT
        and last.recorded_at >= received_at - STOP_HOLDS_AGAINST_YES
    )
    invitation = repository.last_invitation_to(session, address)
    is_open = (
        invitation is not None
        and patient_ref is not None
        and invitation.patient_ref == patient_ref
        and invitation_open(invitation.sent_at, received_at, validity)
    )
    return YesContext(invitation_open=is_open, stopped_recently=stopped_recently)
