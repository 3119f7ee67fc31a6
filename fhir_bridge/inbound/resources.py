"""The FHIR R4 resources two-way messaging writes: inbound Communication, Consent, Task, and
the Appointment participant change. Pure builders; each is validated with the strict R4
(4.0.1) models before it can leave, like ``outreach.communication`` does.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from rules.consent import (
    OUTREACH_CHANNEL_SYSTEM,
    OUTREACH_PURPOSE_SYSTEM,
    mask_address,
    opt_in_consent,
    opt_out_consent,
)
from rules.consent.codes import CONTACT_HINT_EXTENSION
from rules.consent.fhirtime import as_utc, parse_fhir_datetime

MEDIUM_SYSTEM: Final = "http://terminology.hl7.org/CodeSystem/v3-ParticipationMode"
TAG_SYSTEM: Final = "urn:fhir-bridge:tag"
INTENT_SYSTEM: Final = "urn:fhir-bridge:inbound-intent"
TASK_CODE_SYSTEM: Final = "urn:fhir-bridge:task-code"
CONSENT_TAG: Final = "fhir-bridge-consent"
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


@dataclass(frozen=True)
class ConsentChange:
    """A patient's opt-out (``permit=False``) or opt-in on one channel (``sms``, ``email``)
    and address, from one instruction (an SMS keyword, an email unsubscribe) that the
    identifier names, so writing it twice creates one Consent."""

    patient_ref: str
    channel: str
    address: str
    permit: bool
    at: datetime
    identifier_system: str
    identifier_value: str
    purposes: tuple[str, ...] = ()
    """Empty: every purpose (a STOP/START); otherwise only these (a staff member's choice)."""
    performer: str | None = None
    """Who recorded it, when not the patient themselves (``Practitioner/…`` from the panel)."""

    @property
    def action(self) -> str:
        """The local ledger's action for this change."""
        return "opt-in" if self.permit else "opt-out"


def outreach_consent(change: ConsentChange) -> dict[str, Any]:
    """The one Consent we write for an opt-out (deny) or opt-in (permit) on any channel.

    Every purpose, the address only as a masked hint, tagged and identified as ours so a
    later change can find and end it (:func:`consents_to_end`).
    """
    build = opt_in_consent if change.permit else opt_out_consent
    hint = mask_address(change.address) if change.address else None
    resource = build(change.patient_ref, change.channel, hint, change.at, purposes=change.purposes)
    if change.performer:
        resource["performer"] = [{"reference": change.performer}]
    resource["meta"] = {"tag": [{"system": TAG_SYSTEM, "code": CONSENT_TAG}]}
    resource["identifier"] = [
        {"system": change.identifier_system, "value": change.identifier_value}
    ]
    validate_r4(resource)
    return resource


def consent_query(change: ConsentChange) -> str:
    """If-None-Exist query that makes the Consent for one instruction idempotent."""
    return f"identifier={change.identifier_system}|{change.identifier_value}"


def consents_to_end(
    kept: dict[str, Any], found: Sequence[dict[str, Any]], identifier_system: str
) -> list[tuple[str, datetime]]:
    """Which of our active Consents a newly written one supersedes, and when each ends.

    Only Consents we wrote (our identifier system) are considered, and only those about the
    same patient, channel, address hint and purposes as ``kept``. Of these the newest
    (``dateTime``; ``kept`` wins a tie) stays active and every other one ends when the newest
    began, so at most one active Consent per patient, channel, address and purpose comes
    from us, whatever order the instructions were processed in. Returns ``(id, end)``.

    A deny for every purpose (a STOP) also ends our older permits for single purposes on
    the same channel, whatever address they were recorded from (a health-tips opt-in; the
    decision reads Consents for every address anyway): after a STOP no permit of ours
    stays active beside it.
    """
    key = _supersession_key(kept, identifier_system)
    if key is None:
        return []
    if not key[3] and (kept.get("provision") or {}).get("type") == "deny":
        narrower = [
            (str(consent["id"]), _stated_at(kept))
            for consent in found
            if consent.get("id")
            and consent.get("id") != kept.get("id")
            and (other := _supersession_key(consent, identifier_system)) is not None
            and other[:2] == key[:2]
            and other[3]
            and (consent.get("provision") or {}).get("type") == "permit"
            and _stated_at(consent) <= _stated_at(kept)
        ]
    else:
        narrower = []
    group = [kept] + [
        consent
        for consent in found
        if consent.get("id") != kept.get("id")
        and _supersession_key(consent, identifier_system) == key
    ]
    newest = max(group, key=lambda consent: (_stated_at(consent), consent is kept))
    end = _stated_at(newest)
    return [
        (str(consent["id"]), end)
        for consent in group
        if consent is not newest and consent.get("id")
    ] + narrower


def end_consent(consent: dict[str, Any], end: datetime) -> dict[str, Any] | None:
    """``consent`` ended at ``end``: ``status`` inactive and ``provision.period.end`` closed
    (never before its start); ``None`` when it is no longer active (nothing to change)."""
    if consent.get("status") != "active":
        return None
    ended = copy.deepcopy(consent)
    ended["status"] = "inactive"
    provision = ended.setdefault("provision", {})
    period = provision.setdefault("period", {})
    start = parse_fhir_datetime(period.get("start"))
    period["end"] = _instant(max(as_utc(end), start) if start is not None else as_utc(end))
    validate_r4(ended)
    return ended


def _supersession_key(
    consent: dict[str, Any], identifier_system: str
) -> tuple[str, tuple[str, ...], str | None, tuple[str, ...]] | None:
    if consent.get("resourceType") != "Consent" or consent.get("status") != "active":
        return None
    identifiers = consent.get("identifier") or []
    if not any(i.get("system") == identifier_system for i in identifiers):
        return None
    provision = consent.get("provision") or {}
    channels = {
        str(coding.get("code"))
        for action in provision.get("action") or []
        for coding in action.get("coding") or []
        if coding.get("system") == OUTREACH_CHANNEL_SYSTEM
    }
    purposes = {
        str(purpose.get("code"))
        for purpose in provision.get("purpose") or []
        if purpose.get("system") == OUTREACH_PURPOSE_SYSTEM
    }
    hint = next(
        (
            str(extension.get("valueString"))
            for extension in provision.get("extension") or []
            if extension.get("url") == CONTACT_HINT_EXTENSION
        ),
        None,
    )
    reference = str((consent.get("patient") or {}).get("reference") or "")
    patient = "/".join(reference.split("/_history/")[0].rstrip("/").split("/")[-2:])
    return patient, tuple(sorted(channels)), hint, tuple(sorted(purposes))


def _stated_at(consent: dict[str, Any]) -> datetime:
    stated = parse_fhir_datetime(consent.get("dateTime"))
    if stated is None:
        stated = parse_fhir_datetime(
            ((consent.get("provision") or {}).get("period") or {}).get("start")
        )
    return stated if stated is not None else datetime.min.replace(tzinfo=UTC)


@dataclass(frozen=True)
class TaskRequest:
    """What an urgent or routine staff Task says: who, what, about which resource.

    ``identifier_value`` (under ``identifier_system``) makes its create idempotent;
    ``code_text`` is the line staff see in their worklist - never clinical detail.
    """

    identifier_system: str
    identifier_value: str
    patient_ref: str | None
    code: str
    description: str
    priority: str
    authored: datetime
    code_text: str | None = None
    callback_number: str | None = None
    focus: str | None = None
    reason_ref: str | None = None
    owner_ref: str | None = None
    tag: str = "fhir-bridge-inbound"


def task_resource(request: TaskRequest) -> dict[str, Any]:
    """A strict R4 Task asking clinic staff to act (the one builder for every staff Task)."""
    resource: dict[str, Any] = {
        "resourceType": "Task",
        "meta": {"tag": [{"system": TAG_SYSTEM, "code": request.tag}]},
        "identifier": [{"system": request.identifier_system, "value": request.identifier_value}],
        "status": "requested",
        "intent": "order",
        "priority": request.priority,
        "code": {
            "coding": [{"system": TASK_CODE_SYSTEM, "code": request.code}],
            "text": request.code_text or request.code,
        },
        "description": request.description,
        "authoredOn": _instant(request.authored),
        "lastModified": _instant(request.authored),
    }
    if request.patient_ref:
        resource["for"] = {"reference": request.patient_ref}
    if request.callback_number:
        # Who to call when we could not tell which patient wrote: staff need the number.
        resource["input"] = [
            {"type": {"text": "Reply-from number"}, "valueString": request.callback_number}
        ]
    if request.focus:
        resource["focus"] = {"reference": request.focus}
    if request.reason_ref:
        resource["reasonReference"] = {"reference": request.reason_ref}
    if request.owner_ref:
        resource["owner"] = {"reference": request.owner_ref}
    validate_r4(resource)
    return resource


def task_query(request: TaskRequest) -> str:
    """If-None-Exist query that makes a Task create idempotent."""
    return f"identifier={request.identifier_system}|{request.identifier_value}"


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
    return task_resource(
        TaskRequest(
            identifier_system=facts.identifier_system,
            identifier_value=facts.provider_message_id,
            patient_ref=facts.patient_ref,
            code=code,
            description=description,
            priority=priority,
            authored=facts.received_at,
            focus=focus,
            reason_ref=reason_ref,
            owner_ref=facts.clinic_ref,
        )
    )


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
