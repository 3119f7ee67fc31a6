"""R4 resources shaped like what Epic/HAPI send, built fresh for every test (no shared state)."""

from __future__ import annotations

from typing import Any

from fhir_bridge.sandbox.subscription_model import (
    FILTER_CRITERIA_URL,
    HEARTBEAT_PERIOD_URL,
    MEDPLUM_SECRET_URL,
    PAYLOAD_CONTENT_URL,
    TOPIC_BASE,
)

APPOINTMENT_TOPIC = f"{TOPIC_BASE}/appointment-change"
EPIC_MRN_SYSTEM = "urn:oid:1.2.840.114350.1.13.0.1.7.5.737384.14"
EPIC_CSN_SYSTEM = "urn:oid:1.2.840.114350.1.13.0.1.7.3.698084.8"
CONFIDENTIALITY = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"


def patient(mrn: str = "E4012") -> dict[str, Any]:
    """A Patient with an Epic MRN and normal confidentiality."""
    return {
        "resourceType": "Patient",
        "meta": {"security": [{"system": CONFIDENTIALITY, "code": "N", "display": "normal"}]},
        "identifier": [
            {
                "use": "usual",
                "type": {
                    "coding": [
                        {"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}
                    ]
                },
                "system": EPIC_MRN_SYSTEM,
                "value": mrn,
            }
        ],
        "active": True,
        "name": [{"use": "official", "family": "Lopez", "given": ["Camila", "Maria"]}],
        "gender": "female",
        "birthDate": "1987-09-12",
    }


def appointment(patient_id: str, status: str = "booked", csn: str = "1000082451") -> dict[str, Any]:
    """A routine follow-up visit as Epic exposes it through FHIR R4."""
    return {
        "resourceType": "Appointment",
        "identifier": [{"system": EPIC_CSN_SYSTEM, "value": csn}],
        "status": status,
        "serviceCategory": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/service-category",
                        "code": "17",
                        "display": "General Practice",
                    }
                ]
            }
        ],
        "appointmentType": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/v2-0276",
                    "code": "FOLLOWUP",
                    "display": "A follow up visit from a previous appointment",
                }
            ]
        },
        "reasonCode": [
            {
                "coding": [
                    {
                        "system": "http://snomed.info/sct",
                        "code": "38341003",
                        "display": "Hypertensive disorder, systemic arterial",
                    }
                ]
            }
        ],
        "start": "2026-12-02T15:30:00Z",
        "end": "2026-12-02T15:50:00Z",
        "minutesDuration": 20,
        "participant": [
            {
                "actor": {"reference": f"Patient/{patient_id}", "display": "Camila Lopez"},
                "required": "required",
                "status": "accepted",
            },
            {
                "actor": {"reference": "Practitioner/eM5CWtq15N0WJeuCet5bJlQ3"},
                "required": "required",
                "status": "accepted",
            },
        ],
    }


def topic_subscription(
    endpoint: str,
    content: str = "full-resource",
    filter_criteria: str | None = None,
    heartbeat_seconds: int | None = None,
) -> dict[str, Any]:
    """An R5-Backport topic-based Subscription to appointment changes."""
    subscription: dict[str, Any] = {
        "resourceType": "Subscription",
        "status": "requested",
        "reason": "Appointment reminders",
        "criteria": APPOINTMENT_TOPIC,
        "channel": {
            "type": "rest-hook",
            "endpoint": endpoint,
            "payload": "application/fhir+json",
            "_payload": {"extension": [{"url": PAYLOAD_CONTENT_URL, "valueCode": content}]},
            "header": ["Authorization: Bearer bridge-inbound-secret"],
        },
    }
    if filter_criteria:
        subscription["_criteria"] = {
            "extension": [{"url": FILTER_CRITERIA_URL, "valueString": filter_criteria}]
        }
    if heartbeat_seconds:
        subscription["channel"]["extension"] = [
            {"url": HEARTBEAT_PERIOD_URL, "valueUnsignedInt": heartbeat_seconds}
        ]
    return subscription


def classic_subscription(
    endpoint: str,
    criteria: str = "Appointment?status=booked",
    payload: str | None = None,
    medplum_secret: str | None = None,
) -> dict[str, Any]:
    """A classic R4 criteria Subscription (empty, HAPI-style or Medplum-style delivery)."""
    channel: dict[str, Any] = {
        "type": "rest-hook",
        "endpoint": endpoint,
        "header": ["Authorization: Bearer bridge-inbound-secret"],
    }
    if payload:
        channel["payload"] = payload
    subscription: dict[str, Any] = {
        "resourceType": "Subscription",
        "status": "requested",
        "reason": "Appointment reminders",
        "criteria": criteria,
        "channel": channel,
    }
    if medplum_secret:
        subscription["extension"] = [{"url": MEDPLUM_SECRET_URL, "valueString": medplum_secret}]
    return subscription
