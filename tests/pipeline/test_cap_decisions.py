"""Frequency caps through the store: deterministic whatever the arrival order, and audited.

Each notification re-plans the patient and reconciles the stored rows
(``replan_patient``). The nearest appointment's reminder must win a capped day
however the EHR's notifications were ordered; a reminder that loses is withheld
``cap-reached`` (a not-done Communication once its send time has come), never
cancelled; and a cap decision is provisional until that send time.
"""

from __future__ import annotations

import itertools
import re
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.orm import Session

from fhir_bridge.outreach import repository
from fhir_bridge.outreach.planning import replan_patient
from fhir_bridge.runtime import Runtime
from fhir_bridge.store.db import transaction
from fhir_bridge.store.models import PlannedMessage
from fhir_bridge.sync.service import SyncDeps, apply_resource, forget_resource
from tests.pipeline.conftest import make_runtime
from tests.pipeline.samples import appointment, patient, with_version

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
RIVERSIDE = "Location/e4W4rmGe9QzuGm2Dy4NBqVc0"
EASTSIDE = "Location/eQ1rN7ZsYv0bWm3Kd8TfLpA2"
Row = tuple[str, str, str | None]


@pytest.fixture
def runtime(sqlite_url: str, tmp_path: Path) -> Iterator[Runtime]:
    rt = make_runtime(sqlite_url, tmp_path, ehr_base_url="http://127.0.0.1:9/fhir/R4")
    yield rt
    rt.engine.dispose()


@dataclass(frozen=True)
class Visit:
    """One appointment the EHR tells us about: its logical name, start and place."""

    name: str
    start: str
    location: str | None = RIVERSIDE


class Clinic:
    """A patient whose appointments arrive as notifications, each followed by a re-plan.

    Every clinic gets fresh resource ids so many arrival orders can share one
    database; :meth:`rows` names them back by their logical names.
    """

    def __init__(self, rt: Runtime, now: datetime = NOW) -> None:
        self.rt = rt
        self.now = now
        self.tag = uuid.uuid4().hex[:10]
        self.patient_id = f"eP{self.tag}"
        self.patient_ref = f"Patient/{self.patient_id}"
        with transaction(rt.sessions) as session:
            apply_resource(session, self._deps(), patient(self.patient_id))

    def _deps(self) -> SyncDeps:
        return SyncDeps(
            ehr=self.rt.ehr,
            now=self.now,
            skew=timedelta(seconds=1),
            on_patient_changed=self._replan,
        )

    def _replan(self, session: Session, patient_ref: str) -> None:
        replan_patient(
            session,
            patient_ref=patient_ref,
            patient=patient(self.patient_id),
            config=self.rt.rules,
            now=self.now,
        )

    def resource_id(self, name: str) -> str:
        return f"e{name}{self.tag}"

    def booked(self, visit: Visit, *, version: str = "1", status: str = "booked") -> dict[str, Any]:
        resource = appointment(
            self.patient_id,
            appointment_id=self.resource_id(visit.name),
            start=visit.start,
            status=status,
            version=version,
            last_updated=f"2026-11-2{version}T14:00:00.000Z",
        )
        if visit.location is not None:
            resource["participant"].append(
                {
                    "actor": {"reference": visit.location},
                    "required": "required",
                    "status": "accepted",
                }
            )
        return resource

    def receive(self, resource: dict[str, Any]) -> None:
        with transaction(self.rt.sessions) as session:
            apply_resource(session, self._deps(), resource)

    def cancel(self, visit: Visit) -> None:
        self.receive(
            with_version(self.booked(visit, status="cancelled"), "2", "2026-11-23T12:00:00.000Z")
        )

    def delete(self, visit: Visit) -> None:
        with transaction(self.rt.sessions) as session:
            forget_resource(session, self._deps(), "Appointment", self.resource_id(visit.name))

    def at(self, now: datetime) -> Clinic:
        self.now = now
        return self

    def rows(self) -> dict[str, PlannedMessage]:
        with transaction(self.rt.sessions) as session:
            found = session.scalars(
                select(PlannedMessage).where(PlannedMessage.patient_ref == self.patient_ref)
            )
            return {self._logical(row.key): row for row in found}

    def outcome(self) -> set[Row]:
        return {(key, row.status, row.reason) for key, row in self.rows().items()}

    def _logical(self, key: str) -> str:
        return re.sub(rf"e(\w+?){self.tag}", r"\1", key)


def _arrive(rt: Runtime, visits: Sequence[Visit]) -> Clinic:
    clinic = Clinic(rt)
    for visit in visits:
        clinic.receive(clinic.booked(visit))
    return clinic


# Boston wall clock: A today-ish, C the day after, B three days later, D the day before A.
A = Visit("A", "2026-12-01T20:00:00Z")  # 3:00 PM Dec 1; its 2-hour reminder 1:00 PM Dec 1
B = Visit("B", "2026-12-04T15:30:00Z")  # its 3-day reminder 10:30 AM Dec 1, before A's
C = Visit("C", "2026-12-02T15:30:00Z")  # its 1-day reminder 10:30 AM Dec 1, before A's
D = Visit("D", "2026-11-30T20:00:00Z")  # its 2-hour reminder 1:00 PM Nov 30, with A's 1-day


def test_every_arrival_order_ends_in_the_same_rows(runtime: Runtime) -> None:
    outcomes = {
        frozenset(_arrive(runtime, order).outcome())
        for order in itertools.permutations((A, B, C, D))
    }

    assert len(outcomes) == 1


def test_the_nearest_appointment_wins_the_day_whichever_notification_came_first(
    runtime: Runtime,
) -> None:
    farther_first = _arrive(runtime, (B, C, A)).rows()
    nearest_first = _arrive(runtime, (A, C, B)).rows()

    for rows in (farther_first, nearest_first):
        assert rows["appointment-reminder|Appointment/A|PT2H"].status == "planned"
        for loser in (
            "appointment-reminder|Appointment/B|P3D",
            "appointment-reminder|Appointment/C|P1D",
        ):
            assert (rows[loser].status, rows[loser].reason) == ("withheld", "cap-reached")


def test_a_planned_reminder_that_loses_to_a_cap_is_withheld_never_cancelled(
    runtime: Runtime,
) -> None:
    clinic = _arrive(runtime, (B,))
    assert clinic.rows()["appointment-reminder|Appointment/B|P3D"].status == "planned"

    clinic.receive(clinic.booked(A))

    row = clinic.rows()["appointment-reminder|Appointment/B|P3D"]
    assert (row.status, row.reason, row.communication_status) == (
        "withheld",
        "cap-reached",
        "pending",
    )
    assert row.trace["withheld"]["caps"]["taken_by"] == [
        f"appointment-reminder|Appointment/{clinic.resource_id('A')}|PT2H"
    ]
    assert not [r for r in clinic.rows().values() if r.reason == "no-longer-planned"]


def test_a_cap_decision_keeps_the_time_the_reminder_would_have_gone(runtime: Runtime) -> None:
    row = _arrive(runtime, (A, B)).rows()["appointment-reminder|Appointment/B|P3D"]

    assert row.send_at == datetime(2026, 12, 1, 15, 30, tzinfo=UTC)


def test_a_capped_reminder_comes_back_when_the_competing_appointment_is_cancelled(
    runtime: Runtime,
) -> None:
    clinic = _arrive(runtime, (A, B))

    clinic.cancel(A)

    row = clinic.rows()["appointment-reminder|Appointment/B|P3D"]
    assert (row.status, row.reason, row.communication_status) == ("planned", None, "none")


def test_a_cap_decision_is_final_once_its_send_time_has_come(runtime: Runtime) -> None:
    clinic = _arrive(runtime, (A, B))

    clinic.at(datetime(2026, 12, 1, 16, 0, tzinfo=UTC)).cancel(A)

    row = clinic.rows()["appointment-reminder|Appointment/B|P3D"]
    assert (row.status, row.reason, row.communication_status) == (
        "withheld",
        "cap-reached",
        "pending",
    )


def test_a_capped_reminder_of_a_deleted_appointment_is_cancelled_without_a_communication(
    runtime: Runtime,
) -> None:
    clinic = _arrive(runtime, (A, B))

    clinic.delete(B)

    row = clinic.rows()["appointment-reminder|Appointment/B|P3D"]
    assert (row.status, row.reason, row.communication_status) == (
        "cancelled",
        "no-longer-planned",
        "none",
    )


def test_the_not_done_communication_for_a_cap_waits_for_the_send_time(runtime: Runtime) -> None:
    clinic = _arrive(runtime, (A, B))
    capped = clinic.rows()["appointment-reminder|Appointment/B|P3D"]

    with transaction(runtime.sessions) as session:
        before = repository.pending_writebacks(
            session, datetime(2026, 12, 1, 15, 0, tzinfo=UTC), 50
        )
        after = repository.pending_writebacks(session, datetime(2026, 12, 1, 16, 0, tzinfo=UTC), 50)

    assert capped.id not in before
    assert capped.id in after


def test_a_late_booking_whose_next_reminder_is_soon_writes_no_communication(
    runtime: Runtime,
) -> None:
    # Booked 30 hours ahead: the 3-day reminder has passed, the 1-day one follows in 6 hours.
    clinic = Clinic(runtime, now=datetime(2026, 11, 30, 14, 0, tzinfo=UTC))

    clinic.receive(clinic.booked(Visit("L", "2026-12-01T20:00:00Z")))

    rows = clinic.rows()
    assert rows["appointment-reminder|Appointment/L|P1D"].status == "planned"
    assert not [key for key, row in rows.items() if row.status == "withheld"]
    assert all(row.communication_status == "none" for row in rows.values())


DAYS = ("2026-12-01", "2026-12-02", "2026-12-04")
HOURS = ("T14:00:00Z", "T16:30:00Z", "T20:00:00Z")
PLACES = (RIVERSIDE, EASTSIDE, None)

visits = st.lists(
    st.tuples(st.sampled_from(DAYS), st.sampled_from(HOURS), st.sampled_from(PLACES)),
    min_size=2,
    max_size=3,
    unique_by=lambda v: (v[0], v[1]),
).map(
    lambda found: [
        Visit(name, day + hour, place)
        for name, (day, hour, place) in zip("XYZ", found, strict=False)
    ]
)


def _live(outcome: set[Row]) -> set[Row]:
    """Rows that mean something to the patient or an auditor.

    A reminder planned for one appointment and then merged into a same-day
    combined message leaves a cancelled row under the single appointment's key;
    which appointment that is depends on which arrived first, and it carries no
    Communication, so it is left out of the comparison.
    """
    return {row for row in outcome if row[1:] != ("cancelled", "no-longer-planned")}


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(visits=visits, data=st.data())
def test_any_set_of_appointments_plans_the_same_in_any_arrival_order(
    runtime: Runtime, visits: list[Visit], data: st.DataObject
) -> None:
    # Each clinic has its own resource ids, so the examples can share one database.
    order = data.draw(st.permutations(visits))

    expected = _live(_arrive(runtime, visits).outcome())

    assert _live(_arrive(runtime, order).outcome()) == expected
