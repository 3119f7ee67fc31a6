"""A worker applies notifications a chunk at a time, and reads what the whole chunk needs
from the EHR together: the Appointments that id-only events name in one ``batch``, then
their Patients (and what they refer to) in another. Against a 20 ms EHR that is the
difference between ~15 and ~100 events a second for one worker process (issue #10).

The read-ahead is only a shortcut: without ``batch`` the reads go side by side, and when
it fails every notification reads on its own and succeeds or retries on its own.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from fhir_bridge import jobs
from fhir_bridge.api import notifications
from fhir_bridge.api.app import create_app
from fhir_bridge.fhir.errors import EhrUnavailable
from fhir_bridge.ingest.auth import subscription_token
from fhir_bridge.runtime import Runtime
from fhir_bridge.sandbox.process import EhrServer
from fhir_bridge.store.db import transaction
from fhir_bridge.store.models import InboxNotification, PlannedMessage
from tests.conftest import NOTIFICATION_SECRET
from tests.pipeline.conftest import add_subscription, make_runtime
from tests.pipeline.ehr_flow import interactions
from tests.pipeline.samples import appointment, notification_bundle, patient, r4_status
from tests.support.databases import postgres_database

pytestmark = pytest.mark.integration

SUBSCRIPTION_ID = "3f1d2c4b-5a69-4e7f-8a1b-2c3d4e5f6a7b"
BOOKINGS = 5


def _new(resource: dict[str, Any]) -> dict[str, Any]:
    fresh = copy.deepcopy(resource)
    fresh.pop("id", None)
    fresh.pop("meta", None)
    return fresh


@pytest.fixture
def rt(ehr: EhrServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Runtime]:
    monkeypatch.setattr(notifications, "wake_worker", lambda _ids: True)
    with postgres_database() as url:
        runtime = make_runtime(url, tmp_path, ehr_base_url=ehr.base_url, ehr_max_attempts=2)
        add_subscription(runtime, subscription_id=SUBSCRIPTION_ID)
        try:
            yield runtime
        finally:
            runtime.ehr.close()
            runtime.engine.dispose()


def _stored_bookings(rt: Runtime, ehr: EhrServer) -> list[int]:
    """Book ``BOOKINGS`` new patients in the EHR; their notifications reach our inbox."""
    start = (datetime.now(UTC) + timedelta(days=10)).strftime("%Y-%m-%dT%H:%M:%SZ")
    token = subscription_token(NOTIFICATION_SECRET, SUBSCRIPTION_ID)
    with TestClient(create_app(rt)) as client:
        for number in range(1, BOOKINGS + 1):
            booked_patient = ehr.create(_new(patient()))
            booked = ehr.create(_new(appointment(booked_patient["id"], start=start)))
            body = notification_bundle(
                r4_status(
                    "event-notification",
                    events=[(number, f"Appointment/{booked['id']}")],
                    events_since_start=number,
                )
            )
            response = client.post(
                f"/notifications/{SUBSCRIPTION_ID}",
                content=json.dumps(body),
                headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            )
            assert response.status_code == 200
    with transaction(rt.sessions) as session:
        return list(session.scalars(select(InboxNotification.id).order_by(InboxNotification.id)))


def _reminded_patients(rt: Runtime) -> int:
    with transaction(rt.sessions) as session:
        return session.scalar(select(func.count(func.distinct(PlannedMessage.patient_ref)))) or 0


def _apply_all(rt: Runtime, ehr: EhrServer) -> dict[str, int]:
    """Book, apply the whole chunk, check every booking was applied and planned; the EHR
    requests applying them made, by type and interaction."""
    inbox_ids = _stored_bookings(rt, ehr)
    before = dict(interactions(ehr))

    outcomes = jobs.process_inbox_batch(rt, inbox_ids)

    assert list(outcomes.values()) == ["done"] * BOOKINGS
    assert _reminded_patients(rt) == BOOKINGS
    return {k: v - before.get(k, 0) for k, v in interactions(ehr).items() if v != before.get(k)}


def test_a_chunk_reads_its_appointments_and_patients_in_batches(
    rt: Runtime, ehr: EhrServer
) -> None:
    requests = _apply_all(rt, ehr)

    assert requests.get("Appointment.batch-entry") == BOOKINGS
    assert requests.get("Patient.batch-entry") == BOOKINGS
    assert "Appointment.read" not in requests and "Patient.read" not in requests


def test_without_batch_the_chunk_reads_side_by_side(
    rt: Runtime, ehr: EhrServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rt.ehr, "supports_batch", lambda: False)

    requests = _apply_all(rt, ehr)

    assert requests.get("Appointment.read") == BOOKINGS
    assert requests.get("Patient.read") == BOOKINGS
    assert "Bundle.batch" not in requests


def test_when_the_read_ahead_fails_each_notification_reads_on_its_own(
    rt: Runtime, ehr: EhrServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unavailable(_references: object) -> dict[str, Any]:
        raise EhrUnavailable("EHR GET Bundle failed (503)", status=503)

    monkeypatch.setattr(rt.ehr, "read_many", unavailable)

    requests = _apply_all(rt, ehr)

    assert requests.get("Appointment.read") == BOOKINGS


def test_a_reference_that_is_no_fhir_id_is_left_out_not_fatal(
    rt: Runtime, ehr: EhrServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Some EHRs put a name where an id belongs; no server can answer it, so the rules go
    without that resource (their documented fallbacks) and every booking is still applied."""
    original = appointment

    def named_practitioner(patient_id: str, **kwargs: Any) -> dict[str, Any]:
        booked = original(patient_id, **kwargs)
        booked["participant"][1]["actor"]["reference"] = "Practitioner/Dr Ana Ruiz, MD"
        return booked

    monkeypatch.setitem(globals(), "appointment", named_practitioner)
    inbox_ids = _stored_bookings(rt, ehr)

    together = jobs.process_inbox_batch(rt, inbox_ids[:-1])
    alone = jobs.process_inbox(rt, inbox_ids[-1])  # a chunk of one reads nothing ahead

    assert [*together.values(), alone] == ["done"] * BOOKINGS
    assert _reminded_patients(rt) == BOOKINGS
