"""Polling an EHR that refuses system-level search (Epic-style): per location or per day."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from fhir_bridge import jobs
from fhir_bridge.runtime import Runtime
from fhir_bridge.sandbox.process import EhrRequestError, EhrServer
from fhir_bridge.settings import SettingsError
from fhir_bridge.sync.polling import PollSearchRefused
from tests.pipeline.conftest import make_runtime
from tests.pipeline.ehr_flow import stored, stored_ids
from tests.pipeline.samples import appointment, patient

pytestmark = pytest.mark.integration

MAIN_CLINIC = "Location/e4W4rmGe9QzuGm2Dy4NBqVc0"
EAST_CLINIC = "Location/eRvTn2S0lQfc5xT7mQ0y0Zw3"
UNLISTED_CLINIC = "Location/eXk1z0b6oQhQ1w8Gg9m2Jtw3"


@pytest.fixture
def epic_like(ehr: EhrServer) -> EhrServer:
    """The fake EHR refusing Appointment/Encounter/MedicationRequest searches without a
    patient, location or date, as Epic does."""
    ehr.settings(system_search=False)
    return ehr


def _runtime(
    ehr: EhrServer, url: str, tmp_path: Path, mode: str, **overrides: Any
) -> Iterator[Runtime]:
    rt = make_runtime(
        url,
        tmp_path,
        ehr_base_url=ehr.base_url,
        ingest_mode="polling",
        poll_search=mode,
        poll_page_size=2,
        **overrides,
    )
    yield rt
    rt.ehr.close()
    rt.engine.dispose()


@pytest.fixture
def per_location(epic_like: EhrServer, sqlite_url: str, tmp_path: Path) -> Iterator[Runtime]:
    yield from _runtime(
        epic_like,
        sqlite_url,
        tmp_path,
        "per-location",
        poll_locations=f"{MAIN_CLINIC}, {EAST_CLINIC}",
    )


@pytest.fixture
def system_poller(epic_like: EhrServer, sqlite_url: str, tmp_path: Path) -> Iterator[Runtime]:
    yield from _runtime(epic_like, sqlite_url, tmp_path, "system")


@pytest.fixture
def per_location_unlisted(
    epic_like: EhrServer, sqlite_url: str, tmp_path: Path
) -> Iterator[Runtime]:
    """per-location with neither FHIR_BRIDGE_POLL_LOCATIONS nor rules-file locations."""
    yield from _runtime(epic_like, sqlite_url, tmp_path, "per-location")


@pytest.fixture
def per_day(epic_like: EhrServer, sqlite_url: str, tmp_path: Path) -> Iterator[Runtime]:
    yield from _runtime(epic_like, sqlite_url, tmp_path, "per-day", poll_window_days=14)


def _new_patient(ehr: EhrServer) -> str:
    resource = copy.deepcopy(patient())
    resource.pop("id")
    resource.pop("meta")
    return str(ehr.create(resource)["id"])


def _book(ehr: EhrServer, patient_id: str, days_ahead: int, location: str) -> dict[str, Any]:
    start = (datetime.now(UTC) + timedelta(days=days_ahead)).replace(microsecond=0)
    resource = appointment(patient_id, start=start.isoformat().replace("+00:00", "Z"))
    resource.pop("id")
    resource.pop("meta")
    resource["participant"].append(
        {
            "actor": {"reference": location, "display": "Riverside Family Medicine, 3rd floor"},
            "required": "required",
            "status": "accepted",
        }
    )
    return ehr.create(resource)


def _instant(moment: datetime) -> str:
    return moment.replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _moved(booked: dict[str, Any], days_ahead: int) -> dict[str, Any]:
    start = datetime.now(UTC) + timedelta(days=days_ahead)
    return {**booked, "start": _instant(start), "end": _instant(start + timedelta(minutes=20))}


def test_the_epic_like_server_refuses_a_system_level_last_updated_search(
    epic_like: EhrServer,
) -> None:
    with pytest.raises(EhrRequestError) as refused:
        epic_like.search("Appointment", _lastUpdated="ge2026-11-01T00:00:00Z")

    assert refused.value.status_code == 400
    outcome = refused.value.outcome
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["code"] == "required"


def test_system_polling_against_it_fails_with_one_line_naming_the_setting(
    system_poller: Runtime,
) -> None:
    with pytest.raises(PollSearchRefused) as refused:
        jobs.poll(system_poller)

    message = str(refused.value)
    assert "\n" not in message
    assert "FHIR_BRIDGE_POLL_SEARCH=per-location" in message
    assert "per-day" in message and "HTTP 400" in message


def test_per_location_polling_finds_the_appointments_at_the_listed_clinics(
    epic_like: EhrServer, per_location: Runtime
) -> None:
    patient_id = _new_patient(epic_like)
    main = _book(epic_like, patient_id, 2, MAIN_CLINIC)
    east = _book(epic_like, patient_id, 5, EAST_CLINIC)
    _book(epic_like, patient_id, 3, UNLISTED_CLINIC)

    applied = jobs.poll(per_location)

    assert applied == {"Appointment": 2}
    assert stored_ids(per_location, "Appointment") == {main["id"], east["id"]}


def test_per_location_polling_searches_each_clinic_by_location_and_date(
    epic_like: EhrServer, per_location: Runtime
) -> None:
    jobs.poll(per_location)

    searches = epic_like.stats()["requests_by_type_and_interaction"]
    assert searches.get("Appointment.search-type") == 2
    assert "MedicationRequest.search-type" not in searches


def test_a_second_poll_applies_only_the_appointment_that_changed(
    epic_like: EhrServer, per_location: Runtime
) -> None:
    patient_id = _new_patient(epic_like)
    booked = [_book(epic_like, patient_id, days, MAIN_CLINIC) for days in (1, 4, 6)]
    jobs.poll(per_location)
    epic_like.update({**booked[1], "status": "cancelled"})

    applied = jobs.poll(per_location)

    assert applied == {"Appointment": 1}
    cancelled = stored(per_location, "Appointment", booked[1]["id"])
    assert cancelled is not None and cancelled["status"] == "cancelled"


def test_polling_twice_without_changes_applies_nothing(
    epic_like: EhrServer, per_location: Runtime
) -> None:
    patient_id = _new_patient(epic_like)
    _book(epic_like, patient_id, 3, MAIN_CLINIC)
    jobs.poll(per_location)

    assert jobs.poll(per_location) == {"Appointment": 0}


def test_per_day_polling_reads_the_window_and_nothing_beyond_it(
    epic_like: EhrServer, per_day: Runtime
) -> None:
    patient_id = _new_patient(epic_like)
    soon = _book(epic_like, patient_id, 3, UNLISTED_CLINIC)
    _book(epic_like, patient_id, 40, MAIN_CLINIC)

    applied = jobs.poll(per_day)

    assert applied == {"Appointment": 1}
    assert stored_ids(per_day, "Appointment") == {soon["id"]}


def test_an_appointment_rescheduled_out_of_the_window_is_re_read_by_id(
    epic_like: EhrServer, per_day: Runtime
) -> None:
    patient_id = _new_patient(epic_like)
    booked = _book(epic_like, patient_id, 2, MAIN_CLINIC)
    jobs.poll(per_day)
    rescheduled = epic_like.update(_moved(booked, 45))

    jobs.poll(per_day)

    held = stored(per_day, "Appointment", booked["id"])
    assert held is not None and held["start"] == rescheduled["start"]


def test_an_appointment_deleted_in_the_ehr_is_forgotten(
    epic_like: EhrServer, per_location: Runtime
) -> None:
    patient_id = _new_patient(epic_like)
    booked = _book(epic_like, patient_id, 2, MAIN_CLINIC)
    jobs.poll(per_location)
    epic_like._call("DELETE", f"{epic_like.base_url}/Appointment/{booked['id']}")

    jobs.poll(per_location)

    assert stored(per_location, "Appointment", booked["id"]) is None


def test_per_location_without_any_location_names_the_setting(
    per_location_unlisted: Runtime,
) -> None:
    with pytest.raises(SettingsError) as missing:
        jobs.poll(per_location_unlisted)

    assert "FHIR_BRIDGE_POLL_LOCATIONS" in str(missing.value)
