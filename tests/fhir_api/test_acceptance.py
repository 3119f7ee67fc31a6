"""Acceptance (issue #13): an auditor with its own key pages through a patient's
Communications since a date, the set equals the EHR's own search, and every query it made
is itself an AuditEvent it can find."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
from fastapi.testclient import TestClient

from fhir_bridge import jobs
from fhir_bridge.api.app import create_app
from fhir_bridge.fhir.keys import SigningKey
from fhir_bridge.runtime import Runtime
from fhir_bridge.sandbox.process import EhrServer
from fhir_bridge.store.db import transaction
from tests.fhir_api.conftest import TOKEN_URL, Auditor, auditor_runtime, sent_message, token_form
from tests.pipeline.messages import PATIENT_REF, planned_row

OTHER_PATIENT = "Patient/eQ8t2vVb7xk4mJcS1nRw0Gz5"
SINCE = "2026-11-28"


@pytest.fixture(scope="module")
def ehr_server() -> Iterator[EhrServer]:
    with EhrServer() as server:
        yield server


@pytest.fixture
def written_back(
    ehr_server: EhrServer, postgres_url: str, tmp_path: Path, auditor_key: SigningKey
) -> Iterator[Runtime]:
    """Messages from two weeks for two patients, each written back to the EHR for real."""
    ehr_server.reset()
    rt = auditor_runtime(postgres_url, tmp_path, auditor_key, ehr_base_url=ehr_server.base_url)
    start = datetime.fromisoformat("2026-11-20T15:00:00+00:00")
    messages = [sent_message(start + timedelta(days=day)) for day in range(0, 14, 2)]
    messages.append(sent_message(start + timedelta(days=9), patient_ref=OTHER_PATIENT))
    messages.append(
        planned_row(
            start + timedelta(days=10),
            status="withheld",
            reason="no-consent",
            communication_status="pending",
        )
    )
    with transaction(rt.sessions) as session:
        session.add_all(messages)
    for message in messages:
        assert jobs.write_back(rt, message.id) == "written"
    yield rt
    rt.ehr.close()
    rt.engine.dispose()


def _identifiers(resources: list[dict[str, Any]]) -> set[str]:
    return {r["identifier"][0]["value"] for r in resources}


def test_auditor_pages_a_patients_communications_and_matches_the_ehr(
    written_back: Runtime, ehr_server: EhrServer, auditor: Auditor
) -> None:
    with TestClient(create_app(written_back)) as client:
        token = client.post(TOKEN_URL, data=token_form(auditor.assertion())).json()
        headers = {"Authorization": f"Bearer {token['access_token']}"}
        url: str | None = f"/fhir/Communication?subject={PATIENT_REF}&sent=ge{SINCE}&_count=2"
        ours: list[dict[str, Any]] = []
        pages = 0
        while url:
            page = client.get(url, headers=headers).json()
            ours += [entry["resource"] for entry in page.get("entry", [])]
            url = next((k["url"] for k in page["link"] if k["relation"] == "next"), None)
            pages += 1
        audit = client.get("/fhir/AuditEvent?subtype=search&_sort=date", headers=headers).json()

    ehr_bundle = ehr_server.search("Communication", subject=PATIENT_REF, _count="100")
    theirs = [
        entry["resource"]
        for entry in ehr_bundle.get("entry", [])
        if entry["resource"].get("sent", "") >= SINCE
    ]
    assert pages == 2
    assert len(ours) == 3
    assert _identifiers(ours) == _identifiers(theirs)
    queries = [
        base64.b64decode(e["query"]).decode()
        for entry in audit["entry"]
        for e in entry["resource"]["entity"]
        if "query" in e
    ]
    assert len(queries) == pages
    assert all(parse_qs(q)["subject"] == [PATIENT_REF] for q in queries)
    assert all(parse_qs(q)["sent"] == [f"ge{SINCE}"] for q in queries)
    patients = {
        e["what"]["reference"]
        for entry in audit["entry"]
        for e in entry["resource"]["entity"]
        if "what" in e
    }
    assert patients == {PATIENT_REF}
