"""Test doubles and R4 fixtures for the EHR client tests.

Fixtures are functions returning fresh dicts so no test can mutate another's data. They mimic
what Epic/HAPI send for R4 4.0.1: opaque ids, meta.versionId/lastUpdated, real code systems.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import httpx
from joserfc.jwk import KeySet, KeySetSerialization

from fhir_bridge.fhir.client import EhrClient, RetryPolicy

BASE_URL = "https://fhir.northside-clinic.example/api/FHIR/R4"
PATIENT_ID = "erXuFYUfucBZaryVksYEcMg3"
APPOINTMENT_ID = "eWFd-3Ccz1XbWx0oEv4M1xw3"
# Strings that must never surface in exception messages or logs.
PHI_MARKERS = ("Rivera", "Ana", "617 555 0142", "1984-03-09", "glucose")

Reply = httpx.Response | Exception | Callable[[httpx.Request], httpx.Response]


def fhir_response(
    status: int, body: dict[str, Any] | None = None, headers: dict[str, str] | None = None
) -> httpx.Response:
    """A response as a FHIR server sends it (application/fhir+json)."""
    all_headers = {"Content-Type": "application/fhir+json;charset=utf-8", **(headers or {})}
    content = httpx.Response(200, json=body).content if body is not None else b""
    return httpx.Response(status, content=content, headers=all_headers)


class ScriptedEhr:
    """An httpx transport that replies from a script, in order, and records every request."""

    def __init__(self, *replies: Reply) -> None:
        self._replies = list(replies)
        self.requests: list[httpx.Request] = []
        # Snapshotted per request: auth flows re-send the same Request object with a new token.
        self.authorizations: list[str | None] = []
        self.transport = httpx.MockTransport(self._handle)

    def _handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        self.authorizations.append(request.headers.get("Authorization"))
        if not self._replies:
            raise AssertionError(f"unexpected extra request {request.method} {request.url}")
        reply = self._replies.pop(0)
        if isinstance(reply, Exception):
            raise reply
        if callable(reply):
            return reply(request)
        return reply


def make_client(
    ehr: ScriptedEhr, sleeps: list[float] | None = None, retry: RetryPolicy | None = None
) -> EhrClient:
    """EhrClient wired to a scripted EHR, recording backoff sleeps instead of sleeping."""
    recorded = sleeps if sleeps is not None else []
    return EhrClient(
        BASE_URL,
        auth=None,
        retry=retry or RetryPolicy(),
        transport=ehr.transport,
        sleep=recorded.append,
    )


def booked_appointment(version: str = "4") -> dict[str, Any]:
    """An Epic-style booked follow-up Appointment."""
    return {
        "resourceType": "Appointment",
        "id": APPOINTMENT_ID,
        "meta": {"versionId": version, "lastUpdated": "2026-11-20T14:03:11Z"},
        "status": "booked",
        "serviceType": [{"coding": [{"system": "http://snomed.info/sct", "code": "11429006"}]}],
        "reasonCode": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/v2-0276",
                        "code": "FOLLOWUP",
                        "display": "A follow up visit from a previous appointment",
                    }
                ]
            }
        ],
        "start": "2026-12-02T09:30:00-05:00",
        "end": "2026-12-02T09:50:00-05:00",
        "minutesDuration": 20,
        "comment": "Bring glucose log",
        "participant": [
            {
                "actor": {"reference": f"Patient/{PATIENT_ID}", "display": "Rivera, Ana"},
                "required": "required",
                "status": "accepted",
            },
            {
                "actor": {
                    "reference": "Practitioner/eM5CWtq15N0WJeuCet8bJlQ3",
                    "display": "Physician Family Medicine, MD",
                },
                "status": "accepted",
            },
        ],
    }


def patient() -> dict[str, Any]:
    """The Patient an Appointment search `_include`s."""
    return {
        "resourceType": "Patient",
        "id": PATIENT_ID,
        "meta": {"versionId": "12", "lastUpdated": "2026-10-02T08:15:40Z"},
        "name": [{"use": "official", "family": "Rivera", "given": ["Ana"]}],
        "telecom": [{"system": "phone", "value": "+1 617 555 0142", "use": "mobile"}],
        "gender": "female",
        "birthDate": "1984-03-09",
    }


def reminder_communication() -> dict[str, Any]:
    """The Communication fhir-bridge writes back after sending an SMS reminder."""
    return {
        "resourceType": "Communication",
        "meta": {
            "security": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality",
                    "code": "R",
                }
            ]
        },
        "identifier": [{"system": "urn:fhir-bridge:outreach", "value": "outreach-7f3c2a91"}],
        "status": "completed",
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/communication-category",
                        "code": "reminder",
                    }
                ]
            }
        ],
        "medium": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationMode",
                        "code": "SMSWRIT",
                    }
                ]
            }
        ],
        "subject": {"reference": f"Patient/{PATIENT_ID}"},
        "about": [{"reference": f"Appointment/{APPOINTMENT_ID}"}],
        "sent": "2026-11-30T14:00:05Z",
        "payload": [{"contentString": "Reminder: appointment Dec 2 at 9:30 AM"}],
    }


def stored(resource: dict[str, Any], resource_id: str, version: str = "1") -> dict[str, Any]:
    """`resource` as the server returns it after storing it."""
    meta = {**resource.get("meta", {}), "versionId": version, "lastUpdated": "2026-11-30T14:00:06Z"}
    return {**resource, "id": resource_id, "meta": meta}


def outcome(code: str, diagnostics: str) -> dict[str, Any]:
    """An OperationOutcome whose diagnostics text may (as real servers' do) contain PHI."""
    return {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": code, "diagnostics": diagnostics}],
    }


def searchset(
    entries: list[tuple[dict[str, Any], str]], next_url: str | None = None, total: int = 3
) -> dict[str, Any]:
    """A searchset Bundle page; `entries` are (resource, search mode) pairs."""
    links = [{"relation": "self", "url": f"{BASE_URL}/Appointment?date=ge2026-12-01"}]
    if next_url:
        links.append({"relation": "next", "url": next_url})
    return {
        "resourceType": "Bundle",
        "id": "5c1b07f4-6a0f-4d8e-9c53-0b1f7f2d6e11",
        "meta": {"lastUpdated": "2026-11-30T14:00:00Z"},
        "type": "searchset",
        "total": total,
        "link": links,
        "entry": [
            {
                "fullUrl": f"{BASE_URL}/{resource['resourceType']}/{resource['id']}",
                "resource": resource,
                "search": {"mode": mode},
            }
            for resource, mode in entries
        ],
    }


def verifier_key_set(jwks: dict[str, Any]) -> KeySet:
    """The registered JWKS as an independent JOSE library (joserfc) loads it to verify JWTs."""
    return KeySet.import_key_set(cast(KeySetSerialization, jwks))
