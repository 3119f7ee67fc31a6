"""What the staff panel tests seed: an Epic-style patient, a Consent, and three outreach rows."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from fhir_bridge.store.db import transaction
from fhir_bridge.store.models import InboundMessage, PlannedMessage, StaffInboxItem

PATIENT_ID = "eq081-VQEgP8drUUqCWzHfw3"
OTHER_PATIENT_ID = "e63wRTbPfr1p8UW81d8Seiw3"
PRACTITIONER_ID = "eM5CWtq15N0WJeuCet5bJlQ3"
APPOINTMENT_ID = "eWLhfjXHp4RUczv2ZCOnpQw3"
MOBILE = "+16175550123"
EMAIL = "m.okafor@example.net"
REPLY_TEXT = "Can I bring my daughter? She translates for me. ¿Puedo llevar a mi hija?"
CRISIS_TEXT = "I can't do this anymore, I don't want to be here"
SENT_TEXT = "Riverside Health: reminder of your visit on Thu Dec 3 at 9:30 AM. Reply C to confirm."


def patient_resource(patient_id: str = PATIENT_ID) -> dict[str, Any]:
    """An R4 Patient as Epic returns it (MRN identifier, ranked telecoms, preferred language)."""
    return {
        "resourceType": "Patient",
        "id": patient_id,
        "identifier": [
            {
                "use": "usual",
                "type": {
                    "coding": [
                        {"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}
                    ]
                },
                "system": "urn:oid:1.2.840.114350.1.13.0.1.7.5.737384.14",
                "value": "203713",
            }
        ],
        "active": True,
        "name": [{"use": "official", "family": "Okafor", "given": ["Mary"]}],
        "telecom": [
            {"system": "phone", "value": "617-555-0123", "use": "mobile", "rank": 1},
            {"system": "email", "value": EMAIL, "use": "home", "rank": 2},
        ],
        "gender": "female",
        "birthDate": "1968-04-12",
        "communication": [
            {
                "language": {"coding": [{"system": "urn:ietf:bcp:47", "code": "en-US"}]},
                "preferred": True,
            }
        ],
    }


def email_consent(patient_id: str = PATIENT_ID) -> dict[str, Any]:
    """An active privacy Consent permitting treatment-related outreach by email."""
    return {
        "resourceType": "Consent",
        "id": "eCnsT7yq1LrU2kCwsm0bH3",
        "status": "active",
        "scope": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/consentscope",
                    "code": "patient-privacy",
                }
            ]
        },
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "patient": {"reference": f"Patient/{patient_id}"},
        "dateTime": "2026-06-02T15:04:00Z",
        "policyRule": {
            "coding": [
                {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "OPTIN"}
            ]
        },
        "provision": {
            "type": "permit",
            "action": [
                {
                    "coding": [
                        {"system": "http://hl7.org/fhir/contact-point-system", "code": "email"}
                    ]
                }
            ],
            "purpose": [
                {"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "TREAT"}
            ],
        },
    }


def _row(patient_id: str, offset: str, send_at: datetime, **fields: Any) -> PlannedMessage:
    appointment = f"Appointment/{APPOINTMENT_ID}"
    trace = {
        "rule": "appointment-reminder",
        "inputs": {
            "appointments": [{"ref": appointment, "status": "booked", "start": "2026-12-03T14:30"}],
            "language": "en",
        },
        "zone": "America/New_York",
        "offset": offset,
        "cadence": ["P3D", "P1D", "PT2H"],
        "sensitive": False,
    }
    values: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "key": f"appointment-reminder|Patient/{patient_id}|{appointment}|{offset}",
        "rule": "appointment-reminder",
        "purpose": "appointment-reminder",
        "patient_ref": f"Patient/{patient_id}",
        "about": [appointment],
        "send_at": send_at,
        "template": "appointment-reminder",
        "language": "en",
        "variables": {"clinic_name": "Riverside Health"},
        "trace": trace,
        "status": "planned",
    }
    values.update(fields)
    return PlannedMessage(**values)


def seed_messages(
    factory: sessionmaker[Session], now: datetime, patient_id: str = PATIENT_ID
) -> dict[str, str]:
    """One sent, one withheld (no contact) and one planned reminder; returns their ids."""
    rows = {
        "sent": _row(
            patient_id,
            "P3D",
            now - timedelta(days=2),
            status="sent",
            channel="sms",
            address=MOBILE,
            text=SENT_TEXT,
            sent_at=now - timedelta(days=2),
            provider="outbox",
            communication_status="written",
            communication_id="eCOMm4kq2rT9",
        ),
        "withheld": _row(
            patient_id,
            "P1D",
            now - timedelta(hours=3),
            status="withheld",
            reason="opted-out",
            reason_detail="patient opted out of SMS",
            communication_status="written",
        ),
        "planned": _row(patient_id, "PT2H", now + timedelta(hours=20)),
    }
    with transaction(factory) as session:
        session.add_all(rows.values())
    return {label: row.id for label, row in rows.items()}


def seed_inbox(
    factory: sessionmaker[Session], now: datetime, patient_id: str = PATIENT_ID
) -> dict[str, int]:
    """Two replies from the patient: a question (newer) and a possible crisis (older)."""
    replies = {
        "crisis": (CRISIS_TEXT, "crisis", "stat", now - timedelta(hours=5)),
        "message": (REPLY_TEXT, "message", "routine", now - timedelta(hours=1)),
    }
    ids = {}
    with transaction(factory) as session:
        for label, (text, kind, priority, at) in replies.items():
            inbound = InboundMessage(
                provider_message_id=f"SM{uuid.uuid4().hex}",
                from_address=MOBILE,
                to_address="+16175550100",
                body=text,
                received_at=at,
                status="done",
                patient_ref=f"Patient/{patient_id}",
                intent=kind,
            )
            session.add(inbound)
            session.flush()
            item = StaffInboxItem(
                inbound_id=inbound.id,
                patient_ref=f"Patient/{patient_id}",
                kind=kind,
                priority=priority,
                status="open",
                communication_ref=f"Communication/in-{inbound.id}",
                created_at=at,
            )
            session.add(item)
            session.flush()
            ids[label] = item.id
    return ids
