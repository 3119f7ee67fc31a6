"""The standalone launch's clinic-wide view: patient replies waiting for staff, across patients.

Rows come from our staff inbox (``fhir_bridge.inbound.repository``); patient names are
read from the EHR with the signed-in user's own token (``user/Patient.rs``), so the EHR
decides what this user may see. Without names the row still shows the reference.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final
from zoneinfo import ZoneInfo

from fhir_bridge.fhir.auth import StaticBearerAuth
from fhir_bridge.fhir.client import EhrClient, RetryPolicy
from fhir_bridge.fhir.errors import EhrError
from fhir_bridge.inbound import repository as inbound_repository
from fhir_bridge.store.db import transaction
from smart_app.banner import banner_from_patient
from smart_app.service import PanelDeps
from smart_app.sessions import ClinicSession

log = logging.getLogger(__name__)
MAX_ROWS: Final = 200
KIND_WORDS: Final = {
    "message": "Reply",
    "crisis": "Crisis: call the patient now",
    "reschedule": "Asks to reschedule",
}
URGENT_PRIORITIES: Final = frozenset({"stat", "urgent", "asap"})


@dataclass(frozen=True)
class WaitingReply:
    """One open inbox item as the clinic list shows it."""

    item_id: int
    patient_ref: str | None
    patient_name: str | None
    mrn: str | None
    what: str
    urgent: bool
    received: str
    text: str | None
    assigned_to: str | None


def load_open_replies(deps: PanelDeps, user: ClinicSession, zone: str) -> list[WaitingReply]:
    """Open items, urgent first then oldest, with names read from the EHR (user's token)."""
    with transaction(deps.sessions) as session:
        found = inbound_repository.open_inbox_all_patients(session, MAX_ROWS)
        items = [
            (
                item.id,
                item.patient_ref,
                item.kind,
                item.priority,
                item.created_at,
                inbound.body if inbound is not None else None,
                item.assigned_to,
            )
            for item, inbound in found
        ]
    patients = _read_patients(deps, user, {ref for _, ref, *_ in items if ref})
    local = ZoneInfo(zone)
    rows = []
    for item_id, patient_ref, kind, priority, created_at, text, assigned_to in items:
        patient = patients.get(patient_ref or "")
        banner = banner_from_patient(patient, required=False) if patient else None
        rows.append(
            WaitingReply(
                item_id=item_id,
                patient_ref=patient_ref,
                patient_name=banner.name if banner else None,
                mrn=banner.identifier if banner and banner.identifier_label == "MRN" else None,
                what=KIND_WORDS.get(kind, kind),
                urgent=priority in URGENT_PRIORITIES or kind == "crisis",
                received=_local(created_at, local),
                text=text,
                assigned_to=assigned_to,
            )
        )
    return rows


def _local(moment: datetime, zone: ZoneInfo) -> str:
    """``Tue Dec 1, 8:00 AM`` in the clinic's time zone."""
    when = moment.astimezone(zone)
    return when.strftime("%a %b %d, %I:%M %p").replace(" 0", " ")


def _read_patients(
    deps: PanelDeps, user: ClinicSession, refs: set[str]
) -> dict[str, dict[str, Any]]:
    """``Patient?_id=a,b,…`` with the user's token; empty when the EHR says no or is down."""
    ids = sorted(ref.partition("/")[2] for ref in refs if ref.startswith("Patient/"))
    if not ids:
        return {}
    client = EhrClient(
        deps.ehr_base_url,
        auth=StaticBearerAuth(user.access_token),
        timeout=deps.ehr_timeout,
        retry=RetryPolicy(max_attempts=2, base_delay=0.2, max_delay=1.0),
    )
    try:
        found = list(client.search_all("Patient", {"_id": ",".join(ids), "_count": str(len(ids))}))
    except EhrError as error:
        log.warning("clinic_inbox_names_unavailable", extra={"error": type(error).__name__})
        return {}
    finally:
        client.close()
    return {f"Patient/{p['id']}": p for p in found if isinstance(p.get("id"), str)}
