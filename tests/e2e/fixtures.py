"""R4 resources as an EHR sends them, for the end-to-end tests."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any


def patient(mrn: str, given: str, family: str, email: str) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "identifier": [
            {
                "use": "usual",
                "type": {
                    "coding": [
                        {"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}
                    ]
                },
                "system": "urn:oid:1.2.840.114350.1.13.0.1.7.5.737384.14",
                "value": mrn,
            }
        ],
        "active": True,
        "name": [{"use": "official", "family": family, "given": [given]}],
        "telecom": [
            {"system": "email", "value": email, "use": "home", "rank": 1},
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


def appointment(patient_id: str, start: datetime, *, status: str = "booked") -> dict[str, Any]:
    return {
        "resourceType": "Appointment",
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
        "start": start.isoformat(timespec="seconds"),
        "end": (start + timedelta(minutes=20)).isoformat(timespec="seconds"),
        "minutesDuration": 20,
        "participant": [
            {
                "actor": {"reference": f"Patient/{patient_id}"},
                "required": "required",
                "status": "accepted",
            },
            {
                "actor": {"reference": "Practitioner/prac-1001", "display": "Dr. Maria Alvarez"},
                "required": "required",
                "status": "accepted",
            },
            {
                "actor": {"reference": "Location/loc-main", "display": "Riverside Main Clinic"},
                "required": "required",
                "status": "accepted",
            },
        ],
    }
