"""The FHIR R4 resources two-way messaging writes: inbound Communication, Consent, Task, and
the Appointment participant change. Pure builders; each is validated with the strict R4
(4.0.1) models before it can leave, like ``outreach.communication`` does.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from rules.consent import mask_address, opt_in_consent, opt_out_consent

MEDIUM_SYSTEM: Final = "http://terminology.hl7.org/CodeSystem/v3-ParticipationMode"
TAG_SYSTEM: Final = "urn:fhir-bridge:tag"
INTENT_SYSTEM: Final = "urn:fhir-bridge:inbound-intent"
TASK_CODE_SYSTEM: Final = "urn:fhir-bridge:task-code"
CLOSED_APPOINTMENT_STATUSES: Final = frozenset(
    {"cancelled", "noshow", "entered-in-error", "fulfilled", "checked-in", "arrived"}
)


class InvalidResource(ValueError):
    """A resource we built failed strict R4 validation (a bug, never patient data)."""


@dataclass(frozen=True)
class InboundFacts:
    """What the EHR records about one inbound SMS; ``reference``s are FHIR references."""

    provider_message_id: str
    identifier_system: str
    patient_ref: str
    text: str
    received_at: datetime
    intent: str
    clinic_ref: str | None = None
    in_response_to: str | None = None
    about: tuple[str, ...] = ()


def _instant(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def _identifier(facts: InboundFacts) -> list[dict[str, str]]:
    return [{"system": facts.identifier_system, "value": facts.provider_message_id}]


def identifier_query(facts: InboundFacts) -> str:
    """If-None-Exist query that makes each create idempotent per inbound message."""
    return f"identifier={facts.identifier_system}|{facts.provider_message_id}"


def inbound_communication(facts: InboundFacts) -> dict[str, Any]:
    """The patient's reply: sender the Patient, recipient the clinic, in response to our SMS."""
    resource: dict[str, Any] = {
        "resourceType": "Communication",
        "meta": {"tag": [{"system": TAG_SYSTEM, "code": "fhir-bridge-inbound"}]},
        "identifier": _identifier(facts),
        "status": "completed",
        "category": [{"coding": [{"system": INTENT_SYSTEM, "code": facts.intent}]}],
        "medium": [{"coding": [{"system": MEDIUM_SYSTEM, "code": "SMSWRIT", "display": "SMS"}]}],
        "subject": {"reference": facts.patient_ref},
        "sender": {"reference": facts.patient_ref},
        "received": _instant(facts.received_at),
        "payload": [{"contentString": facts.text}],
    }
    if facts.clinic_ref:
        resource["recipient"] = [{"reference": facts.clinic_ref}]
    if facts.in_response_to:
        resource["inResponseTo"] = [{"reference": facts.in_response_to}]
    if facts.about:
        resource["about"] = [{"reference": ref} for ref in facts.about]
    validate_r4(resource)
    return resource


def sms_consent(facts: InboundFacts, address: str, *, permit: bool) -> dict[str, Any]:
    """The Consent recording a STOP (deny) or START (permit) on SMS, with our identifier."""
    build = opt_in_consent if permit else opt_out_consent
    resource = build(facts.patient_ref, "sms", mask_address(address), facts.received_at)
    resource["identifier"] = _identifier(facts)
    validate_r4(resource)
    return resource


def staff_task(
    facts: InboundFacts,
    *,
    code: str,
    description: str,
    priority: str,
    focus: str | None,
    reason_ref: str | None,
) -> dict[str, Any]:
    """A Task asking clinic staff to act (call back to reschedule, or reach a patient now)."""
    resource: dict[str, Any] = {
        "resourceType": "Task",
        "meta": {"tag": [{"system": TAG_SYSTEM, "code": "fhir-bridge-inbound"}]},
        "identifier": _identifier(facts),
        "status": "requested",
        "intent": "order",
        "priority": priority,
        "code": {"coding": [{"system": TASK_CODE_SYSTEM, "code": code}], "text": code},
        "description": description,
        "for": {"reference": facts.patient_ref},
        "authoredOn": _instant(facts.received_at),
        "lastModified": _instant(facts.received_at),
    }
    if focus:
        resource["focus"] = {"reference": focus}
    if reason_ref:
        resource["reasonReference"] = {"reference": reason_ref}
    if facts.clinic_ref:
        resource["owner"] = {"reference": facts.clinic_ref}
    validate_r4(resource)
    return resource


def accept_participant(appointment: dict[str, Any], patient_ref: str) -> dict[str, Any] | None:
    """The Appointment with the patient's participation ``accepted``; ``None`` if already so.

    Raises :class:`AppointmentClosed` for an appointment that can no longer be confirmed and
    :class:`NotAParticipant` when the patient is not on it.
    """
    if appointment.get("status") in CLOSED_APPOINTMENT_STATUSES:
        raise AppointmentClosed(str(appointment.get("status")))
    changed = copy.deepcopy(appointment)
    for participant in changed.get("participant") or []:
        if (participant.get("actor") or {}).get("reference") == patient_ref:
            if participant.get("status") == "accepted":
                return None
            participant["status"] = "accepted"
            validate_r4(changed)
            return changed
    raise NotAParticipant("patient is not a participant")


class AppointmentClosed(ValueError):
    """The appointment is cancelled, finished or otherwise past confirming."""


class NotAParticipant(ValueError):
    """The replying patient is not a participant of the appointment."""


def validate_r4(resource: dict[str, Any]) -> None:
    """Validate with the strict R4 (4.0.1) model of the resource's type."""
    from fhirclient.models.appointment import Appointment
    from fhirclient.models.communication import Communication
    from fhirclient.models.consent import Consent
    from fhirclient.models.fhirabstractbase import FHIRValidationError
    from fhirclient.models.task import Task

    models = {
        "Appointment": Appointment,
        "Communication": Communication,
        "Consent": Consent,
        "Task": Task,
    }
    resource_type = str(resource.get("resourceType"))
    model = models.get(resource_type)
    if model is None:
        raise InvalidResource(f"no R4 model for {resource_type}")
    try:
        model(resource, strict=True)
    except FHIRValidationError as exc:
        raise InvalidResource(f"{resource_type} is not valid R4: {exc.errors[:1]}") from None
