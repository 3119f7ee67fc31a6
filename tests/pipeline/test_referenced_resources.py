"""Live planning reads an appointment's Location (and what else it refers to) the way
preview reads it from a Bundle: from our store, filled from the EHR, kept for a TTL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from fhir_bridge.fhir.errors import EhrNotFound, EhrUnavailable
from fhir_bridge.outreach.snapshot import ReferenceSource, live_snapshot, prefetch_references
from fhir_bridge.runtime import Runtime
from fhir_bridge.store.db import transaction
from fhir_bridge.sync import repository
from tests.pipeline import samples
from tests.pipeline.conftest import make_runtime

NOW = datetime(2026, 11, 30, 15, 0, tzinfo=UTC)
LOCATION_ID = "e4W4rmGe9QzuGm2Dy4NBqVc0"


class CountingEhr:
    """The EHR's read interaction over a dict, counting reads; ``down`` makes it unreachable."""

    def __init__(self, resources: dict[str, dict[str, Any]]) -> None:
        self.resources = resources
        self.reads: list[str] = []
        self.down = False

    def read(self, resource_type: str, resource_id: str) -> dict[str, Any]:
        reference = f"{resource_type}/{resource_id}"
        self.reads.append(reference)
        if self.down:
            raise EhrUnavailable("EHR unreachable", status=503)
        if reference not in self.resources:
            raise EhrNotFound("gone", status=404)
        return dict(self.resources[reference])


def _clinic(name: str) -> dict[str, Any]:
    return {
        "resourceType": "Location",
        "id": LOCATION_ID,
        "meta": {"versionId": "3"},
        "name": name,
        "address": {"city": "Los Angeles", "state": "CA", "postalCode": "90017"},
    }


def _appointment_at_clinic() -> dict[str, Any]:
    resource = samples.appointment()
    resource["participant"].append(
        {"actor": {"reference": f"Location/{LOCATION_ID}"}, "status": "accepted"}
    )
    return resource


@pytest.fixture
def runtime(sqlite_url: str, tmp_path: Path) -> Iterator[Runtime]:
    rt = make_runtime(sqlite_url, tmp_path)
    with transaction(rt.sessions) as session:
        appointment = _appointment_at_clinic()
        repository.save_state(
            session,
            None,
            resource=appointment,
            version_id="1",
            last_updated=None,
            patient_ref="Patient/eJzlzKe3KPzAV5TtkxmNivQ3",
            now=NOW,
        )
    yield rt


def _snapshot(rt: Runtime, source: ReferenceSource, now: datetime) -> dict[str, Any]:
    with transaction(rt.sessions) as session:
        snapshot = live_snapshot(
            session, "Patient/eJzlzKe3KPzAV5TtkxmNivQ3", None, source=source, now=now
        )
        return dict(snapshot.referenced)


def test_the_appointments_location_is_read_from_the_ehr_once_and_kept(runtime: Runtime) -> None:
    ehr = CountingEhr({f"Location/{LOCATION_ID}": _clinic("Riverside Wilshire")})
    source = ReferenceSource(ehr=ehr, ttl=timedelta(hours=1))

    first = _snapshot(runtime, source, NOW)
    second = _snapshot(runtime, source, NOW + timedelta(minutes=10))

    assert first[f"Location/{LOCATION_ID}"]["name"] == "Riverside Wilshire"
    assert second == first
    assert ehr.reads.count(f"Location/{LOCATION_ID}") == 1


def test_a_renamed_location_is_seen_once_the_cached_copy_is_older_than_the_ttl(
    runtime: Runtime,
) -> None:
    ehr = CountingEhr({f"Location/{LOCATION_ID}": _clinic("Riverside Wilshire")})
    source = ReferenceSource(ehr=ehr, ttl=timedelta(hours=1))
    _snapshot(runtime, source, NOW)
    ehr.resources[f"Location/{LOCATION_ID}"] = _clinic("Riverside Downtown")

    within = _snapshot(runtime, source, NOW + timedelta(minutes=30))
    after = _snapshot(runtime, source, NOW + timedelta(hours=2))

    assert within[f"Location/{LOCATION_ID}"]["name"] == "Riverside Wilshire"
    assert after[f"Location/{LOCATION_ID}"]["name"] == "Riverside Downtown"


def test_an_unreachable_ehr_leaves_the_last_known_copy_in_use(runtime: Runtime) -> None:
    ehr = CountingEhr({f"Location/{LOCATION_ID}": _clinic("Riverside Wilshire")})
    source = ReferenceSource(ehr=ehr, ttl=timedelta(hours=1))
    _snapshot(runtime, source, NOW)
    ehr.down = True

    later = _snapshot(runtime, source, NOW + timedelta(hours=5))

    assert later[f"Location/{LOCATION_ID}"]["name"] == "Riverside Wilshire"


def test_a_location_the_ehr_does_not_have_is_left_out(runtime: Runtime) -> None:
    source = ReferenceSource(ehr=CountingEhr({}), ttl=timedelta(hours=1))

    assert f"Location/{LOCATION_ID}" not in _snapshot(runtime, source, NOW)


def test_prefetch_fills_the_store_so_planning_reads_no_ehr(runtime: Runtime) -> None:
    ehr = CountingEhr({f"Location/{LOCATION_ID}": _clinic("Riverside Wilshire")})
    source = ReferenceSource(ehr=ehr, ttl=timedelta(hours=1))

    prefetch_references(runtime.sessions, source, [_appointment_at_clinic()], NOW)
    reads_before_planning = len(ehr.reads)
    referenced = _snapshot(runtime, source, NOW)

    assert f"Location/{LOCATION_ID}" in referenced
    assert len(ehr.reads) == reads_before_planning


def test_a_dangling_reference_is_asked_about_once_per_ttl(runtime: Runtime) -> None:
    ehr = CountingEhr({})
    source = ReferenceSource(ehr=ehr, ttl=timedelta(hours=1))

    _snapshot(runtime, source, NOW)
    _snapshot(runtime, source, NOW + timedelta(minutes=5))
    _snapshot(runtime, source, NOW + timedelta(hours=2))

    assert ehr.reads.count(f"Location/{LOCATION_ID}") == 2
