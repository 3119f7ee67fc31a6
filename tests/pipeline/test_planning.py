"""Re-planning reconciles stored messages with the rules' plan, by message key."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from fhir_bridge.outreach.planning import Planner, replan_patient
from fhir_bridge.runtime import Runtime
from fhir_bridge.store.db import transaction
from fhir_bridge.store.models import REASON_CANCELLED_BY_STAFF, PlannedMessage
from rules.model import Plan
from rules.model import PlannedMessage as Planned
from tests.pipeline.conftest import make_runtime
from tests.pipeline.messages import APPOINTMENT_REF, PATIENT_REF

DAY_BEFORE = "appointment-reminder:Appointment/eWLhfjXHp4RUczv2VLqhCGQ3:P1D"
TWO_HOURS_BEFORE = "appointment-reminder:Appointment/eWLhfjXHp4RUczv2VLqhCGQ3:PT2H"


@pytest.fixture
def runtime(sqlite_url: str, tmp_path: Path) -> Iterator[Runtime]:
    rt = make_runtime(sqlite_url, tmp_path)
    yield rt
    rt.engine.dispose()


def _wanted(key: str, send_at: datetime) -> Planned:
    return Planned(
        key=key,
        rule="appointment-reminder",
        purpose="appointment-reminder",
        patient_ref=PATIENT_REF,
        about=(APPOINTMENT_REF,),
        send_at=send_at,
        template="appointment_reminder",
        language="en",
        variables={},
        trace={},
    )


def _planner(*messages: Planned) -> Planner:
    def plan(_snapshot: object, _config: object, now: datetime) -> Plan:
        return Plan(patient_ref=PATIENT_REF, planned_at=now, messages=messages)

    return plan


def _replan(rt: Runtime, now: datetime, *messages: Planned) -> None:
    with transaction(rt.sessions) as session:
        replan_patient(
            session,
            patient_ref=PATIENT_REF,
            patient=None,
            config=rt.rules,
            now=now,
            planner=_planner(*messages),
        )


def _rows(rt: Runtime) -> dict[str, PlannedMessage]:
    with transaction(rt.sessions) as session:
        return {row.key: row for row in session.scalars(select(PlannedMessage))}


def _set_status(rt: Runtime, key: str, status: str) -> None:
    with transaction(rt.sessions) as session:
        row = session.scalar(select(PlannedMessage).where(PlannedMessage.key == key))
        assert row is not None
        row.status = status


def test_new_keys_are_inserted_as_planned(runtime: Runtime, fixed_now: datetime) -> None:
    _replan(runtime, fixed_now, _wanted(DAY_BEFORE, fixed_now + timedelta(days=6)))

    rows = _rows(runtime)
    assert [(key, row.status) for key, row in rows.items()] == [(DAY_BEFORE, "planned")]


def test_replanning_the_same_plan_changes_nothing(runtime: Runtime, fixed_now: datetime) -> None:
    wanted = _wanted(DAY_BEFORE, fixed_now + timedelta(days=6))
    _replan(runtime, fixed_now, wanted)
    before = _rows(runtime)[DAY_BEFORE]

    _replan(runtime, fixed_now, wanted)

    after = _rows(runtime)
    assert list(after) == [DAY_BEFORE]
    assert (after[DAY_BEFORE].id, after[DAY_BEFORE].send_at) == (before.id, before.send_at)


def test_a_moved_appointment_reschedules_its_message(runtime: Runtime, fixed_now: datetime) -> None:
    _replan(runtime, fixed_now, _wanted(DAY_BEFORE, fixed_now + timedelta(days=6)))
    original_id = _rows(runtime)[DAY_BEFORE].id

    _replan(runtime, fixed_now, _wanted(DAY_BEFORE, fixed_now + timedelta(days=9)))

    row = _rows(runtime)[DAY_BEFORE]
    assert (row.id, row.status, row.send_at) == (
        original_id,
        "planned",
        fixed_now + timedelta(days=9),
    )


def test_a_vanished_key_is_cancelled(runtime: Runtime, fixed_now: datetime) -> None:
    _replan(
        runtime,
        fixed_now,
        _wanted(DAY_BEFORE, fixed_now + timedelta(days=6)),
        _wanted(TWO_HOURS_BEFORE, fixed_now + timedelta(days=7)),
    )

    _replan(runtime, fixed_now, _wanted(DAY_BEFORE, fixed_now + timedelta(days=6)))

    rows = _rows(runtime)
    assert rows[TWO_HOURS_BEFORE].status == "cancelled"
    assert rows[TWO_HOURS_BEFORE].reason == "no-longer-planned"
    assert rows[DAY_BEFORE].status == "planned"


@pytest.mark.parametrize("history", ["sent", "sending", "unknown", "withheld", "failed"])
def test_messages_that_already_left_are_never_touched(
    runtime: Runtime, fixed_now: datetime, history: str
) -> None:
    send_at = fixed_now + timedelta(days=6)
    _replan(runtime, fixed_now, _wanted(DAY_BEFORE, send_at))
    _set_status(runtime, DAY_BEFORE, history)

    _replan(runtime, fixed_now, _wanted(DAY_BEFORE, send_at + timedelta(days=2)))
    _replan(runtime, fixed_now)

    row = _rows(runtime)[DAY_BEFORE]
    assert (row.status, row.send_at) == (history, send_at)


def test_a_cancelled_message_that_is_wanted_again_is_revived(
    runtime: Runtime, fixed_now: datetime
) -> None:
    wanted = _wanted(DAY_BEFORE, fixed_now + timedelta(days=6))
    _replan(runtime, fixed_now, wanted)
    _replan(runtime, fixed_now)

    _replan(runtime, fixed_now, wanted)

    assert _rows(runtime)[DAY_BEFORE].status == "planned"


def test_a_message_cancelled_by_staff_stays_cancelled_when_replanned(
    runtime: Runtime, fixed_now: datetime
) -> None:
    wanted = _wanted(DAY_BEFORE, fixed_now + timedelta(days=6))
    _replan(runtime, fixed_now, wanted)
    with transaction(runtime.sessions) as session:
        row = session.scalars(select(PlannedMessage).where(PlannedMessage.key == DAY_BEFORE)).one()
        row.status, row.reason = "cancelled", REASON_CANCELLED_BY_STAFF

    _replan(runtime, fixed_now, wanted)

    assert _rows(runtime)[DAY_BEFORE].status == "cancelled"
