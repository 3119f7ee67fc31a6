"""Re-planning a patient reads the resources their appointments refer to (the clinic's
Location, the Practitioner, the HealthcareService) from our store one level at a time, in
one statement per level, not one per reference: it runs for every event."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from fhir_bridge.outreach.snapshot import ReferenceSource, live_snapshot
from fhir_bridge.runtime import Runtime
from fhir_bridge.store.db import transaction
from fhir_bridge.sync import repository
from tests.pipeline.conftest import make_runtime
from tests.pipeline.samples import appointment, patient

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
PATIENT_REF = "Patient/eJzlzKe3KPzAV5TtkxmNivQ3"


class NoEhr:
    """Every reference is in the store and fresh: reading the EHR would be a bug here."""

    def read(self, resource_type: str, resource_id: str) -> dict[str, Any]:
        raise AssertionError(f"read {resource_type}/{resource_id} from the EHR")


@pytest.fixture
def rt(sqlite_url: str, tmp_path: Path) -> Iterator[Runtime]:
    runtime = make_runtime(sqlite_url, tmp_path)
    yield runtime
    runtime.engine.dispose()


def _store(rt: Runtime, resource: dict[str, Any], patient_ref: str | None = None) -> None:
    with transaction(rt.sessions) as session:
        repository.save_state(
            session,
            None,
            resource=resource,
            version_id="1",
            last_updated=None,
            patient_ref=patient_ref,
            now=NOW,
        )


def test_a_level_of_references_is_read_in_one_statement(rt: Runtime) -> None:
    visit = appointment()
    visit["participant"] += [
        {"actor": {"reference": "Location/e4W4rmGe9QzuGm2Dy4ZQiwQ3"}, "status": "accepted"},
        {"actor": {"reference": "HealthcareService/eHs7Qk1"}, "status": "accepted"},
    ]
    _store(rt, visit, PATIENT_REF)
    for reference in (
        "Practitioner/eM5CWtq15N0WJeuCet5bJlQ3",
        "Location/e4W4rmGe9QzuGm2Dy4ZQiwQ3",
        "HealthcareService/eHs7Qk1",
    ):
        resource_type, _, resource_id = reference.partition("/")
        _store(rt, {"resourceType": resource_type, "id": resource_id, "name": "Riverside"})
    statements: list[str] = []
    event.listen(
        rt.engine,
        "before_cursor_execute",
        lambda _c, _cur, statement, *_a: statements.append(statement),
    )

    with transaction(rt.sessions) as session:
        snapshot = live_snapshot(
            session,
            PATIENT_REF,
            patient(),
            source=ReferenceSource(ehr=NoEhr(), ttl=timedelta(hours=1)),
            now=NOW,
            messages=[],
        )

    assert sorted(snapshot.referenced) == [
        "HealthcareService/eHs7Qk1",
        "Location/e4W4rmGe9QzuGm2Dy4ZQiwQ3",
        "Practitioner/eM5CWtq15N0WJeuCet5bJlQ3",
    ]
    reads = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
    assert len(reads) == 2  # the patient's resources, then their references in one level
