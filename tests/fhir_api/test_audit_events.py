"""AuditEvent search and read, and every /fhir query audited, refused ones included."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from fhir_bridge.api.app import create_app
from fhir_bridge.audit import events, service
from fhir_bridge.fhir.keys import SigningKey
from fhir_bridge.runtime import Runtime
from fhir_bridge.store.db import transaction
from tests.fhir_api.conftest import FULL_SCOPE, TOKEN_URL, Auditor, auditor_runtime, token_form
from tests.pipeline.messages import APPOINTMENT_REF, PATIENT_REF

STAFF = "Practitioner/eM2kR8wQ4tZ1vXb6nLc3Jp9"
OBSERVER = events.Observer(base_url="http://127.0.0.1:8000")
PANEL = events.PanelClient(client_id="fhir-bridge-staff", address="10.20.0.15")


@pytest.fixture
def pg_client(postgres_url: str, tmp_path: Path, auditor_key: SigningKey) -> Iterator[Any]:
    rt = auditor_runtime(postgres_url, tmp_path, auditor_key)
    with TestClient(create_app(rt)) as test_client:
        yield test_client, rt
    rt.engine.dispose()


def _headers(client: TestClient, auditor: Auditor, scope: str = FULL_SCOPE) -> dict[str, str]:
    token = client.post(TOKEN_URL, data=token_form(auditor.assertion(), scope)).json()
    return {"Authorization": f"Bearer {token['access_token']}"}


def _staff_history(rt: Runtime, at: datetime) -> tuple[str, str]:
    """A staff member opened the panel, then cancelled a reminder about an appointment."""
    opened = events.panel_opened(
        observer=OBSERVER, recorded=at, staff_ref=STAFF, patient_ref=PATIENT_REF, client=PANEL
    )
    cancelled = events.patient_change(
        observer=OBSERVER,
        recorded=at + timedelta(minutes=3),
        action="U",
        requestor_ref=STAFF,
        patient_ref=PATIENT_REF,
        target={"reference": APPOINTMENT_REF},
        client=PANEL,
        what="cancel",
    )
    with transaction(rt.sessions) as session:
        return service.record(session, opened), service.record(session, cancelled)


def _ids(client: TestClient, headers: dict[str, str], query: str) -> list[str]:
    response = client.get(f"/fhir/AuditEvent?{query}", headers=headers)
    assert response.status_code == 200, response.text
    return [e["resource"]["id"] for e in response.json().get("entry", [])]


def test_audit_event_search_finds_staff_actions_by_each_parameter(
    pg_client: Any, auditor: Auditor, fixed_now: datetime
) -> None:
    client, rt = pg_client
    opened, cancelled = _staff_history(rt, fixed_now)
    headers = _headers(client, auditor)
    cases = {
        f"patient={PATIENT_REF}&_sort=date": [opened, cancelled],
        f"agent={STAFF}": [cancelled, opened],
        f"entity={APPOINTMENT_REF}": [cancelled],
        "type=rest&subtype=update": [cancelled],
        "subtype=read,update&outcome=0&_sort=date": [opened, cancelled],
        "date=2026-12-01&date=lt2026-12-01T14:01:00Z": [opened],
        "outcome=8": [],
    }

    found = {query: _ids(client, headers, query) for query in cases}

    assert found == cases


def test_an_audit_event_reads_as_recorded(
    pg_client: Any, auditor: Auditor, fixed_now: datetime
) -> None:
    client, rt = pg_client
    opened, _ = _staff_history(rt, fixed_now)

    event = client.get(f"/fhir/AuditEvent/{opened}", headers=_headers(client, auditor)).json()

    assert event["id"] == opened
    assert event["subtype"][0]["code"] == "read"
    assert event["meta"]["profile"] == [events.BALP + "PatientRead"]


def test_token_parameters_with_a_system_are_refused_for_audit_events(
    client: TestClient, auditor: Auditor
) -> None:
    response = client.get(
        "/fhir/AuditEvent?type=http://terminology.hl7.org/CodeSystem/audit-event-type|rest",
        headers=_headers(client, auditor),
    )

    assert response.status_code == 400


def test_reads_and_refusals_are_audited_with_their_outcome(
    client: TestClient, auditor: Auditor
) -> None:
    headers = _headers(client, auditor, "system/Communication.rs system/AuditEvent.rs")
    client.get("/fhir/Communication?recipient=Patient/x", headers=headers)  # 400
    client.get("/fhir/Communication/8d5c8a55-0000-4000-8000-000000000000", headers=headers)
    client.get("/fhir/Communication", headers={"Authorization": "Bearer forged"})  # 401

    events_seen = client.get("/fhir/AuditEvent?_sort=date", headers=headers).json()

    summary = [
        (e["resource"]["subtype"][0]["code"], e["resource"]["outcome"])
        for e in events_seen["entry"]
    ]
    assert summary == [("search", "4"), ("read", "4"), ("search", "8")]
    requestor = events_seen["entry"][0]["resource"]["agent"][0]
    assert requestor["who"]["identifier"]["value"] == auditor.client_id
