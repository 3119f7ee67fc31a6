"""The panel's use cases: read the patient's outreach and consent, cancel, record opt-in/out.

Every function is given the staff session, and touches only that session's
patient. EHR reads use the *user's* access token from the launch, so the EHR's
own access rules for that user apply. Audit lines carry ids and codes only.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from fhir_bridge.fhir.auth import StaticBearerAuth
from fhir_bridge.fhir.client import EhrClient, RetryPolicy
from fhir_bridge.fhir.errors import EhrError
from fhir_bridge.inbound import repository as inbound_repository
from fhir_bridge.outreach import repository as outreach
from fhir_bridge.outreach.lifecycle import MessageLifecycle
from fhir_bridge.store.db import transaction
from fhir_bridge.store.models import LedgerEntry
from rules.consent import CHANNELS
from rules.consent.ledger import ACTION_OPT_IN, ACTION_OPT_OUT, SOURCE_STAFF
from smart_app.consent_view import ChannelConsent, consent_matrix
from smart_app.errors import MessageNotFound, NotPending, OtherPatientForbidden, SmartAppError
from smart_app.sessions import StaffSession
from smart_app.timeline import STAFF_CANCEL_REASON, TimelineEntry, timeline_entries

log = logging.getLogger("smart_app.audit")
STAFF_ACTIONS: Final = frozenset({ACTION_OPT_IN, ACTION_OPT_OUT})


class BadActionRequest(SmartAppError):
    """An unknown channel or action in a consent form."""


@dataclass(frozen=True)
class PanelData:
    """Everything the panel shows for the launch patient."""

    patient_ref: str
    fhir_user: str | None
    timeline: list[TimelineEntry]
    consent: list[ChannelConsent]
    consent_available: bool

    def as_json(self) -> dict[str, Any]:
        """The JSON twin served at ``/smart/api/timeline``."""
        return {
            "patient": self.patient_ref,
            "messages": [entry.as_json() for entry in self.timeline],
            "consent_available": self.consent_available,
            "consent": [
                {
                    "channel": row.channel,
                    "address_hint": row.address_hint,
                    "purposes": {
                        cell.purpose: {
                            "allowed": cell.allowed,
                            "reason": cell.reason,
                            "used": list(cell.used),
                        }
                        for cell in row.cells
                    },
                }
                for row in self.consent
            ],
        }


@dataclass(frozen=True)
class PanelDeps:
    """Collaborators: the runtime's sessions and rules, the EHR base URL and a clock."""

    sessions: Any
    policy: Any
    ehr_base_url: str
    clock: Callable[[], datetime]
    ehr_timeout: float = 10.0


def require_patient(staff: StaffSession, requested: str | None) -> None:
    """Refuse any request naming a patient other than the one the chart launched us for."""
    if requested is not None and requested != staff.patient_ref:
        log.warning("staff_other_patient_refused", extra={"kind": "authorization"})
        raise OtherPatientForbidden("other-patient")


def load_panel(deps: PanelDeps, staff: StaffSession) -> PanelData:
    """Timeline from our database; consent from the EHR (user's token) plus the ledger."""
    now = deps.clock()
    patient, consents, available = _read_ehr(deps, staff)
    addresses = [t["value"] for t in (patient or {}).get("telecom") or [] if t.get("value")]
    with transaction(deps.sessions) as session:
        rows = outreach.messages_for_patient(session, staff.patient_ref)
        timeline = timeline_entries(rows)
        entries = outreach.ledger_for(session, staff.patient_ref, addresses)
        ledger = [outreach.as_consent_entry(entry) for entry in entries]
    matrix = (
        consent_matrix(
            patient=patient, consents=consents, ledger=ledger, policy=deps.policy, now=now
        )
        if available
        else []
    )
    return PanelData(staff.patient_ref, staff.fhir_user, timeline, matrix, available)


def cancel_message(deps: PanelDeps, staff: StaffSession, message_id: str) -> None:
    """Cancel a planned/queued message of the launch patient, recording who did it."""
    now = deps.clock()
    with transaction(deps.sessions) as session:
        row = outreach.get(session, message_id)
        if row is None:
            raise MessageNotFound("no-such-message")
        require_patient(staff, row.patient_ref)
        trace = {
            **(row.trace or {}),
            "staff_action": {
                "action": "cancel",
                "by": staff.fhir_user,
                "at": now.isoformat(),
                "encounter": staff.encounter_ref,
            },
        }
        if not MessageLifecycle(session).cancel_if_open(
            message_id, reason=STAFF_CANCEL_REASON, trace=trace, now=now
        ):
            raise NotPending("not-pending")
    log.info(
        "staff_cancelled_message by=%s",
        staff.fhir_user,
        extra={"message_id": message_id, "kind": "cancel", "outcome": "cancelled"},
    )


def record_channel_preference(
    deps: PanelDeps, staff: StaffSession, channel: str, action: str
) -> int:
    """A staff opt-in or opt-out for every address on ``channel`` (all purposes)."""
    if channel not in CHANNELS or action not in STAFF_ACTIONS:
        raise BadActionRequest("bad-consent-action")
    now = deps.clock()
    with transaction(deps.sessions) as session:
        entry = outreach.add_ledger_entry(
            session,
            LedgerEntry(
                patient_ref=staff.patient_ref,
                channel=channel,
                address=None,
                purpose="*",
                action=action,
                source=SOURCE_STAFF,
                recorded_at=now,
            ),
        )
        entry_id = entry.id
    log.info(
        "staff_recorded_consent by=%s channel=%s action=%s",
        staff.fhir_user,
        channel,
        action,
        extra={"id": entry_id, "kind": "ledger", "outcome": action},
    )
    return entry_id


def _read_ehr(
    deps: PanelDeps, staff: StaffSession
) -> tuple[dict[str, Any] | None, list[dict[str, Any]], bool]:
    """The Patient and their Consents with the user's token; unavailable = shown as such."""
    _, _, patient_id = staff.patient_ref.partition("/")
    client = EhrClient(
        deps.ehr_base_url,
        auth=StaticBearerAuth(staff.access_token),
        timeout=deps.ehr_timeout,
        retry=RetryPolicy(max_attempts=2, base_delay=0.2, max_delay=1.0),
    )
    try:
        patient = client.read("Patient", patient_id)
        consents = list(
            client.search_all("Consent", {"patient": staff.patient_ref, "_count": "100"})
        )
    except EhrError as error:
        log.warning("staff_panel_ehr_unavailable", extra={"error": type(error).__name__})
        return None, [], False
    finally:
        client.close()
    return patient, consents, True


def open_inbox(deps: PanelDeps, staff: StaffSession) -> list[dict[str, Any]]:
    """Open staff-inbox items for the launch patient only (references, no message text)."""
    with transaction(deps.sessions) as session:
        return [
            {
                "id": item.id,
                "kind": item.kind,
                "priority": item.priority,
                "communication": item.communication_ref,
                "task": item.task_ref,
                "created_at": item.created_at.isoformat(),
            }
            for item in inbound_repository.open_inbox_items(session, staff.patient_ref, 200)
        ]
