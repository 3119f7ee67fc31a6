"""R4 JSON shaped like what Epic, Cerner and HAPI send, built fresh for every test."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

EHR_BASE = "https://fhir.riverside-health.example.org/api/FHIR/R4"
BACKPORT = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition"
EPIC_MRN_SYSTEM = "urn:oid:1.2.840.114350.1.13.0.1.7.5.737384.14"
EPIC_CSN_SYSTEM = "urn:oid:1.2.840.114350.1.13.0.1.7.3.698084.8"
CONFIDENTIALITY = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
PATIENT_NAME = "Camila"
PATIENT_EMAIL = "camila.lopez@example.net"


def patient(patient_id: str = "eJzlzKe3KPzAV5TtkxmNivQ3") -> dict[str, Any]:
    """A Patient with an Epic MRN, an email address and normal confidentiality."""
    return {
        "resourceType": "Patient",
        "id": patient_id,
        "meta": {
            "versionId": "3",
            "lastUpdated": "2026-11-20T15:02:11.000Z",
            "security": [{"system": CONFIDENTIALITY, "code": "N", "display": "normal"}],
        },
        "identifier": [
            {
                "use": "usual",
                "type": {
                    "coding": [
                        {"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}
                    ]
                },
                "system": EPIC_MRN_SYSTEM,
                "value": "E4012",
            }
        ],
        "active": True,
        "name": [{"use": "official", "family": "Lopez", "given": [PATIENT_NAME, "Maria"]}],
        "telecom": [{"system": "email", "value": PATIENT_EMAIL, "use": "home", "rank": 1}],
        "gender": "female",
        "birthDate": "1987-09-12",
    }


def appointment(
    patient_id: str = "eJzlzKe3KPzAV5TtkxmNivQ3",
    *,
    appointment_id: str | None = "eWLhfjXHp4RUczv2VLqhCGQ3",
    start: str = "2026-12-08T15:30:00Z",
    status: str = "booked",
    version: str | None = "1",
    last_updated: str | None = "2026-11-23T14:00:00.000Z",
) -> dict[str, Any]:
    """A routine follow-up visit as Epic exposes it through FHIR R4."""
    resource: dict[str, Any] = {"resourceType": "Appointment"}
    if appointment_id is not None:
        resource["id"] = appointment_id
    meta: dict[str, Any] = {}
    if version is not None:
        meta["versionId"] = version
    if last_updated is not None:
        meta["lastUpdated"] = last_updated
    if meta:
        resource["meta"] = meta
    resource.update(
        {
            "identifier": [{"system": EPIC_CSN_SYSTEM, "value": "1000082451"}],
            "status": status,
            "serviceType": [
                {
                    "coding": [
                        {
                            "system": "http://snomed.info/sct",
                            "code": "394814009",
                            "display": "General practice",
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
                            "display": "Hypertensive disorder",
                        }
                    ]
                }
            ],
            "start": start,
            "end": _plus_minutes(start, 20),
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
    )
    return resource


def with_version(resource: dict[str, Any], version: str, last_updated: str) -> dict[str, Any]:
    """A copy of a resource as another version of it."""
    changed = copy.deepcopy(resource)
    changed["meta"] = {**changed.get("meta", {}), "versionId": version, "lastUpdated": last_updated}
    return changed


def r4_status(
    kind: str,
    *,
    subscription_id: str = "sub-appointment-7731",
    events: Sequence[tuple[int, str | None]] = (),
    events_since_start: int = 0,
    status: str = "active",
) -> dict[str, Any]:
    """The Backport IG R4 ``Parameters`` status resource."""
    parameters: list[dict[str, Any]] = [
        {
            "name": "subscription",
            "valueReference": {"reference": f"{EHR_BASE}/Subscription/{subscription_id}"},
        },
        {
            "name": "topic",
            "valueCanonical": "http://fhir-bridge.test/SubscriptionTopic/appointment-change",
        },
        {"name": "status", "valueCode": status},
        {"name": "type", "valueCode": kind},
        {"name": "events-since-subscription-start", "valueString": str(events_since_start)},
    ]
    for number, focus in events:
        parts: list[dict[str, Any]] = [
            {"name": "event-number", "valueString": str(number)},
            {"name": "timestamp", "valueInstant": "2026-11-23T14:00:00.000Z"},
        ]
        if focus is not None:
            parts.append({"name": "focus", "valueReference": {"reference": f"{EHR_BASE}/{focus}"}})
        parameters.append({"name": "notification-event", "part": parts})
    return {
        "resourceType": "Parameters",
        "id": "7d0c2d0e-9d0e-4a59-8d53-0b5f3b6f2f11",
        "meta": {"profile": [f"{BACKPORT}/backport-subscription-status-r4"]},
        "parameter": parameters,
    }


def r4b_status(
    kind: str,
    *,
    subscription_id: str = "sub-appointment-7731",
    events: Sequence[tuple[int, str | None]] = (),
    events_since_start: int = 0,
) -> dict[str, Any]:
    """The R4B ``SubscriptionStatus`` resource."""
    resource: dict[str, Any] = {
        "resourceType": "SubscriptionStatus",
        "id": "0c8f3a44-2f7e-4a43-9e0f-6f1c93f0a2b4",
        "status": "active",
        "type": kind,
        "eventsSinceSubscriptionStart": str(events_since_start),
        "subscription": {"reference": f"{EHR_BASE}/Subscription/{subscription_id}"},
        "topic": "http://fhir-bridge.test/SubscriptionTopic/appointment-change",
    }
    if events:
        resource["notificationEvent"] = [
            {
                "eventNumber": str(number),
                "timestamp": "2026-11-23T14:00:00.000Z",
                **({"focus": {"reference": f"{EHR_BASE}/{focus}"}} if focus else {}),
            }
            for number, focus in events
        ]
    return resource


def notification_bundle(status: dict[str, Any], *resources: dict[str, Any]) -> dict[str, Any]:
    """A Backport IG ``history`` Bundle: status first, then any full resources."""
    entries: list[dict[str, Any]] = [
        {"fullUrl": "urn:uuid:5bd5a3f6-3f0b-4b9b-8c57-9f1c0b1e3e2a", "resource": status}
    ]
    for resource in resources:
        entries.append(
            {
                "fullUrl": f"{EHR_BASE}/{resource['resourceType']}/{resource['id']}",
                "resource": resource,
                "request": {"method": "PUT", "url": f"{resource['resourceType']}/{resource['id']}"},
                "response": {"status": "200"},
            }
        )
    return {
        "resourceType": "Bundle",
        "id": "b5e7c1a2-6f3e-4f1e-9a59-3c1d2e4f5a6b",
        "meta": {"profile": [f"{BACKPORT}/backport-subscription-notification-r4"]},
        "type": "history",
        "timestamp": "2026-11-23T14:00:01.000Z",
        "entry": entries,
    }


def _plus_minutes(instant: str, minutes: int) -> str:
    """``instant`` plus some minutes; text that is not a date (bad-input tests) stays as is."""
    try:
        moment = datetime.fromisoformat(instant.replace("Z", "+00:00"))
    except ValueError:
        return instant
    return (
        (moment + timedelta(minutes=minutes)).isoformat(timespec="seconds").replace("+00:00", "Z")
    )
