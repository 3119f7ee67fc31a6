"""Fresh copies of the R4 fixtures in ``tests/fixtures/consent`` and small builders.

Every call re-reads the JSON, so a test that edits its copy cannot affect another.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from rules.consent import LedgerEntry

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "consent"
NOW = datetime(2025, 3, 10, 14, 0, tzinfo=UTC)
PATIENT_REF = "Patient/erXuFYUfucBZaryVksYEcMg3"
MOBILE_E164 = "+16175550143"


def load(name: str) -> dict[str, Any]:
    """A fresh copy of ``tests/fixtures/consent/<name>.json``."""
    return json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))


def ledger_entry(
    entry_id: str,
    action: str,
    *,
    channel: str = "sms",
    purpose: str = "*",
    address: str | None = None,
    days_ago: float = 1,
    source: str = "sms-keyword",
) -> LedgerEntry:
    """A ledger entry for the fixture patient recorded ``days_ago`` before :data:`NOW`."""
    return LedgerEntry(
        id=entry_id,
        patient_ref=PATIENT_REF,
        channel=channel,
        address=address,
        purpose=purpose,
        action=action,
        recorded_at=NOW - timedelta(days=days_ago),
        source=source,
    )


def dated(resource: dict[str, Any], when: str) -> dict[str, Any]:
    """``resource`` with ``Consent.dateTime`` set to ``when``."""
    resource["dateTime"] = when
    return resource


SCOPE_SYSTEM = "http://terminology.hl7.org/CodeSystem/consentscope"
PURPOSE_SYSTEM = "https://fhir-bridge.org/fhir/CodeSystem/outreach-purpose"
CHANNEL_SYSTEM = "https://fhir-bridge.org/fhir/CodeSystem/outreach-channel"
ACTION_SYSTEM = "http://terminology.hl7.org/CodeSystem/consentaction"
ACT_REASON = "http://terminology.hl7.org/CodeSystem/v3-ActReason"


def purpose_coding(code: str, system: str = PURPOSE_SYSTEM) -> dict[str, str]:
    """A ``provision.purpose`` Coding."""
    return {"system": system, "code": code}


def action(code: str, system: str = CHANNEL_SYSTEM) -> dict[str, Any]:
    """A ``provision.action`` CodeableConcept."""
    return {"coding": [{"system": system, "code": code}]}


def make_consent(
    consent_id: str,
    provision: dict[str, Any] | None,
    *,
    date_time: str = "2025-02-01T10:00:00Z",
    status: str = "active",
    scope: str = "patient-privacy",
    policy_rule: str | None = None,
) -> dict[str, Any]:
    """A Consent shaped like an EHR's (meta, LOINC category, patient, dateTime)."""
    consent: dict[str, Any] = {
        "resourceType": "Consent",
        "id": consent_id,
        "meta": {"versionId": "1", "lastUpdated": date_time},
        "status": status,
        "scope": {"coding": [{"system": SCOPE_SYSTEM, "code": scope}]},
        "category": [
            {
                "coding": [
                    {"system": "http://loinc.org", "code": "59284-0", "display": "Patient Consent"}
                ]
            }
        ],
        "patient": {"reference": PATIENT_REF},
        "dateTime": date_time,
    }
    if policy_rule is not None:
        consent["policyRule"] = {
            "coding": [
                {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": policy_rule}
            ]
        }
    if provision is not None:
        consent["provision"] = provision
    return consent
