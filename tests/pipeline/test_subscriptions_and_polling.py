"""Creating Subscriptions idempotently, and polling when the EHR has none."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from fhir_bridge import jobs
from fhir_bridge.runtime import Runtime
from fhir_bridge.sandbox.process import EhrServer
from fhir_bridge.sandbox.receiver import NotificationReceiver
from tests.pipeline.conftest import make_runtime
from tests.pipeline.ehr_flow import create_subscriptions
from tests.pipeline.samples import appointment, patient
from tests.support.databases import sqlite_database

pytestmark = pytest.mark.integration


def _remote_subscriptions(ehr: EhrServer) -> list[dict[str, Any]]:
    bundle = ehr.search("Subscription", _count="100")
    return [entry["resource"] for entry in bundle.get("entry", [])]


def _book(ehr: EhrServer, patient_id: str, days_ahead: int) -> dict[str, Any]:
    start = (datetime.now(UTC) + timedelta(days=days_ahead)).replace(microsecond=0)
    resource = appointment(patient_id, start=start.isoformat().replace("+00:00", "Z"))
    resource.pop("id")
    resource.pop("meta")
    return ehr.create(resource)


def _new_patient(ehr: EhrServer) -> str:
    resource = copy.deepcopy(patient())
    resource.pop("id")
    resource.pop("meta")
    return str(ehr.create(resource)["id"])


def test_creating_subscriptions_twice_leaves_one_per_type(
    ehr: EhrServer, ehr_runtime: Runtime
) -> None:
    first = create_subscriptions(ehr_runtime)
    second = create_subscriptions(ehr_runtime)

    remote = _remote_subscriptions(ehr)
    assert len(remote) == 3
    assert [s.remote_id for s in first] == [s.remote_id for s in second]


def test_a_fresh_database_adopts_the_subscriptions_already_on_the_ehr(
    ehr: EhrServer, ehr_runtime: Runtime, receiver: NotificationReceiver, tmp_path: Path
) -> None:
    first = create_subscriptions(ehr_runtime)
    fresh_dir = tmp_path / "fresh"
    fresh_dir.mkdir()
    with sqlite_database(fresh_dir) as fresh_url:
        fresh = make_runtime(
            fresh_url,
            fresh_dir,
            ehr_base_url=ehr.base_url,
            public_base_url=ehr_runtime.settings.public_base_url,
        )
        adopted = create_subscriptions(fresh)
        fresh.ehr.close()
        fresh.engine.dispose()

    assert len(_remote_subscriptions(ehr)) == 3
    assert {(s.id, s.remote_id) for s in adopted} == {(s.id, s.remote_id) for s in first}


@pytest.fixture
def polling_runtime(ehr: EhrServer, sqlite_url: str, tmp_path: Path) -> Runtime:
    return make_runtime(
        sqlite_url,
        tmp_path,
        ehr_base_url=ehr.base_url,
        ingest_mode="polling",
        poll_page_size=2,
    )


def test_polling_pages_through_every_changed_resource(
    ehr: EhrServer, polling_runtime: Runtime
) -> None:
    patient_id = _new_patient(ehr)
    for days in range(5, 10):
        _book(ehr, patient_id, days)

    applied = jobs.poll(polling_runtime)

    assert applied["Appointment"] == 5
    assert ehr.stats()["requests_by_interaction"].get("search-type", 0) >= 3


def test_a_second_poll_only_applies_what_changed_since_the_watermark(
    ehr: EhrServer, polling_runtime: Runtime
) -> None:
    patient_id = _new_patient(ehr)
    booked = [_book(ehr, patient_id, days) for days in range(5, 9)]
    jobs.poll(polling_runtime)
    ehr.update({**booked[0], "status": "cancelled"})

    applied = jobs.poll(polling_runtime)

    assert applied == {"Appointment": 1, "MedicationRequest": 0, "Encounter": 0}
