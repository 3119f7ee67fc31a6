"""Building the R4 ``Communication`` that records each message, sent or withheld.

Auditors query the EHR, not us: every message we sent, and every one we chose
not to send, appears there with its rule, template, consent and reason. The
business identifier is our message id, so a retried write never duplicates.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fhir_bridge.inbound.resources import TaskRequest
from fhir_bridge.store.models import REASON_CANCELLED_BY_STAFF, PlannedMessage
from rules.answers import answer_trace
from rules.campaigns import CAMPAIGN_RULE
from rules.model import REASON_STAFF_CALL_INSTEAD

CATEGORY_SYSTEM = "http://terminology.hl7.org/CodeSystem/communication-category"
MEDIUM_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-ParticipationMode"
PURPOSE_SYSTEM = "urn:fhir-bridge:outreach-purpose"
REASON_SYSTEM = "urn:fhir-bridge:withheld-reason"
TAG_SYSTEM = "urn:fhir-bridge:tag"

MEDIUM_BY_CHANNEL = {
    "sms": ("SMSWRIT", "SMS message"),
    "email": ("EMAILWRIT", "email"),
    "voice": ("PHONE", "telephone"),
}
CATEGORY_BY_PURPOSE = {"appointment-reminder": "reminder"}
# A campaign message's priority (rules.campaigns trace) as R4 communication-category and
# request-priority codes: an urgent broadcast is an ``alert`` sent ``urgent``.
CATEGORY_BY_CAMPAIGN_PRIORITY = {"alert": "alert"}
PRIORITY_BY_CAMPAIGN_PRIORITY = {"alert": "urgent"}


class InvalidCommunication(ValueError):
    """Our own Communication failed strict R4 validation (a bug, never patient data)."""


@dataclass(frozen=True)
class WritebackOptions:
    identifier_system: str
    sender_reference: str | None = None


def communication_status(message: PlannedMessage) -> str:
    """FHIR Communication.status for where the message is in its life."""
    if message.status == "sent":
        if message.delivery_status in ("undelivered", "failed"):
            return "not-done"
        if message.provider in ("smtp", "outbox") or message.delivery_status == "delivered":
            return "completed"
        return "in-progress"
    if message.status == "unknown":
        return "unknown"
    return "not-done"


def build_communication(message: PlannedMessage, options: WritebackOptions) -> dict[str, Any]:
    """The Communication for one message, as strict R4 JSON."""
    status = communication_status(message)
    resource: dict[str, Any] = {
        "resourceType": "Communication",
        "meta": {"tag": [{"system": TAG_SYSTEM, "code": "fhir-bridge-outreach"}]},
        "identifier": [{"system": options.identifier_system, "value": message.id}],
        "status": status,
        "category": [
            {
                "coding": [
                    {
                        "system": CATEGORY_SYSTEM,
                        "code": CATEGORY_BY_CAMPAIGN_PRIORITY.get(
                            campaign_priority(message) or "",
                            CATEGORY_BY_PURPOSE.get(message.purpose, "notification"),
                        ),
                    }
                ]
            },
            {"coding": [{"system": PURPOSE_SYSTEM, "code": message.purpose}]},
        ],
        "subject": {"reference": message.patient_ref},
        "about": [{"reference": ref} for ref in message.about],
        "note": [{"text": explain(message)}],
    }
    priority = PRIORITY_BY_CAMPAIGN_PRIORITY.get(campaign_priority(message) or "")
    if priority is not None:
        resource["priority"] = priority
    if message.channel in MEDIUM_BY_CHANNEL:
        code, display = MEDIUM_BY_CHANNEL[message.channel]
        resource["medium"] = [
            {"coding": [{"system": MEDIUM_SYSTEM, "code": code, "display": display}]}
        ]
    if status == "not-done":
        resource["statusReason"] = {
            "coding": [{"system": REASON_SYSTEM, "code": message.reason or "unspecified"}],
            "text": message.reason_detail or message.reason or "withheld",
        }
    if message.status in ("sent", "unknown"):
        resource["recipient"] = [{"reference": message.patient_ref}]
        if message.sent_at:
            resource["sent"] = message.sent_at.isoformat()
        if message.subject_line:
            resource["topic"] = {"text": message.subject_line}
        if message.text is not None:
            resource["payload"] = [{"contentString": message.text}]
    if options.sender_reference:
        resource["sender"] = {"reference": options.sender_reference}
    staff = staff_cancellation(message)
    if staff is not None:
        resource["note"].append({"authorReference": {"reference": staff}, "text": "Cancelled"})
    reply, by, answer = answer_trace(message.trace)
    if not resource["about"]:  # a staff answer is about nothing but the reply it answers
        del resource["about"]
    if reply is not None:
        resource["inResponseTo"] = [{"reference": reply}]
    if by is not None and by.startswith("Practitioner/"):
        text = f"Answer to the patient's reply, chosen by staff: {answer}"
        resource["note"].append({"authorReference": {"reference": by}, "text": text})
    validate_r4(resource)
    return resource


def campaign_priority(message: PlannedMessage) -> str | None:
    """``routine`` or ``alert`` for a campaign message (withheld ones keep their planning
    trace under ``withheld``), None for any other message."""
    if message.rule != CAMPAIGN_RULE:
        return None
    trace: dict[str, Any] = message.trace or {}
    withheld = trace.get("withheld")
    value = (withheld if isinstance(withheld, dict) else trace).get("priority")
    return value if isinstance(value, str) else None


def staff_cancellation(message: PlannedMessage) -> str | None:
    """The Practitioner who cancelled the message from the staff panel, if one did."""
    if message.reason != REASON_CANCELLED_BY_STAFF:
        return None
    action = (message.trace or {}).get("staff_action") or {}
    by = action.get("by") if isinstance(action, dict) else None
    return by if isinstance(by, str) and by.startswith("Practitioner/") else None


STAFF_CALL_TASK_CODE = "call-after-discharge"
STAFF_CALL_TASK_TEXT = "Call patient after discharge"
STAFF_CALL_TASK_DESCRIPTION = (
    "Please call the patient to check in after discharge. No automated message was sent."
)


def needs_staff_call(message: PlannedMessage) -> bool:
    """True for a message withheld so that staff call the patient instead."""
    return message.status == "withheld" and message.reason == REASON_STAFF_CALL_INSTEAD


def staff_call_request(
    message: PlannedMessage, options: WritebackOptions, communication_ref: str | None
) -> TaskRequest:
    """The urgent Task asking staff to call: about the stay, never about its reason.

    Its identifier derives from the message id, so a retried write never doubles it.
    """
    return TaskRequest(
        identifier_system=options.identifier_system,
        identifier_value=f"staff-call-{message.id}",
        patient_ref=message.patient_ref,
        code=STAFF_CALL_TASK_CODE,
        code_text=STAFF_CALL_TASK_TEXT,
        description=STAFF_CALL_TASK_DESCRIPTION,
        priority="urgent",
        authored=message.created_at,
        focus=message.about[0] if message.about else None,
        reason_ref=communication_ref,
        owner_ref=options.sender_reference,
        tag="fhir-bridge-outreach",
    )


def explain(message: PlannedMessage) -> str:
    """One human-readable line: which rule, template, consent and why."""
    parts = [f"rule={message.rule}", f"purpose={message.purpose}"]
    if message.template:
        parts.append(f"template={message.template}")
    if message.language:
        parts.append(f"language={message.language}")
    if message.consent_used:
        parts.append("consent=" + ",".join(str(c) for c in message.consent_used))
    if message.reason:
        parts.append(f"reason={message.reason}")
    return "fhir-bridge " + " ".join(parts)


def identifier_search(message_id: str, options: WritebackOptions) -> str:
    """The If-None-Exist query that makes the create idempotent."""
    return f"identifier={options.identifier_system}|{message_id}"


def validate_r4(resource: dict[str, Any]) -> None:
    """Validate against the strict R4 (4.0.1) model before anything leaves."""
    from fhirclient.models.communication import Communication
    from fhirclient.models.fhirabstractbase import FHIRValidationError

    try:
        Communication(resource, strict=True)
    except FHIRValidationError as exc:
        raise InvalidCommunication(f"Communication is not valid R4: {exc.errors[:1]}") from None
