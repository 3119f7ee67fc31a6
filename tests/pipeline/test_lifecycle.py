"""A planned message changes state only through ``MessageLifecycle``, and only from the
states each transition may leave: a conditional UPDATE that wins once and loses on the
wrong state, on SQLite and PostgreSQL. The column holds only ``MessageStatus`` values."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from fhir_bridge.outreach import planning
from fhir_bridge.outreach.lifecycle import MessageLifecycle, MessageStatus
from fhir_bridge.outreach.planning import replan_patient
from fhir_bridge.runtime import Runtime
from fhir_bridge.store.db import transaction
from fhir_bridge.store.migrate import alembic_config, upgrade
from fhir_bridge.store.models import REASON_CANCELLED_BY_STAFF, PlannedMessage
from rules.caps import REASON_CAP_REACHED
from rules.model import Plan
from rules.model import PlannedMessage as Planned
from tests.pipeline.conftest import make_runtime
from tests.pipeline.messages import APPOINTMENT_REF, PATIENT_REF, planned_row

LEASE = timedelta(minutes=2)
SID = "SM5b2f0c1d9e8a47b6c3d2e1f0a9b8c7d6"
ALL = tuple(MessageStatus)

Move = Callable[[MessageLifecycle, str, datetime], bool]


@pytest.fixture
def runtime(database_url: str, tmp_path: Path) -> Iterator[Runtime]:
    rt = make_runtime(database_url, tmp_path)
    yield rt
    rt.engine.dispose()


def _one_row_per_status(rt: Runtime, now: datetime) -> dict[MessageStatus, str]:
    """A due row in every status, its lease run out, no reason and no provider id."""
    rows = {
        status: planned_row(now, status=status.value, lease_until=now - timedelta(minutes=1))
        for status in ALL
    }
    with transaction(rt.sessions) as session:
        session.add_all(rows.values())
    return {status: row.id for status, row in rows.items()}


def _status(rt: Runtime, message_id: str) -> str:
    with transaction(rt.sessions) as session:
        row = session.get(PlannedMessage, message_id)
        assert row is not None
        return row.status


def _move(rt: Runtime, move: Move, message_id: str, now: datetime) -> bool:
    with transaction(rt.sessions) as session:
        return move(MessageLifecycle(session), message_id, now)


TRANSITIONS: dict[str, tuple[Move, Sequence[MessageStatus], MessageStatus]] = {
    "claim": (
        lambda lc, mid, now: lc.claim(mid, now, LEASE),
        (MessageStatus.PLANNED, MessageStatus.QUEUED),
        MessageStatus.QUEUED,
    ),
    "start_sending": (
        lambda lc, mid, now: lc.start_sending(mid, now + LEASE),
        (MessageStatus.QUEUED,),
        MessageStatus.SENDING,
    ),
    "mark_sent": (
        lambda lc, mid, now: lc.mark_sent(
            mid, provider="twilio", provider_message_id=SID, delivery_status="queued", sent_at=now
        ),
        (MessageStatus.SENDING, MessageStatus.QUEUED, MessageStatus.UNKNOWN),
        MessageStatus.SENT,
    ),
    "requeue": (
        lambda lc, mid, now: lc.requeue(mid, at=now + timedelta(seconds=30)),
        (MessageStatus.SENDING,),
        MessageStatus.QUEUED,
    ),
    "fail": (
        lambda lc, mid, now: lc.fail(mid, reason="invalid-address", detail="21211"),
        (MessageStatus.SENDING,),
        MessageStatus.FAILED,
    ),
    "withhold": (
        lambda lc, mid, now: lc.withhold(
            mid, reason="no-consent", detail="no consented channel", trace={"consent": []}
        ),
        (MessageStatus.QUEUED,),
        MessageStatus.WITHHELD,
    ),
    "settle_unknown": (
        lambda lc, mid, now: lc.settle_unknown(
            mid, now=now, reason="delivery-unconfirmed", detail="worker stopped"
        ),
        (MessageStatus.SENDING,),
        MessageStatus.UNKNOWN,
    ),
    "confirm_sent": (
        lambda lc, mid, now: lc.confirm_sent(mid, provider="twilio", provider_message_id=SID),
        (MessageStatus.UNKNOWN,),
        MessageStatus.SENT,
    ),
    "cancel_if_open": (
        lambda lc, mid, now: lc.cancel_if_open(
            mid, reason=REASON_CANCELLED_BY_STAFF, trace={}, now=now
        ),
        (MessageStatus.PLANNED, MessageStatus.QUEUED),
        MessageStatus.CANCELLED,
    ),
    "replan": (
        lambda lc, mid, now: lc.replan(mid, now=now, fields={"send_at": now + timedelta(days=1)}),
        (MessageStatus.PLANNED, MessageStatus.QUEUED, MessageStatus.CANCELLED),
        MessageStatus.PLANNED,
    ),
    "withhold_on_replan": (
        lambda lc, mid, now: lc.withhold_on_replan(
            mid, now=now, reason="sensitive", detail="sensitive care", trace={}, fields={}
        ),
        (MessageStatus.PLANNED, MessageStatus.QUEUED, MessageStatus.CANCELLED),
        MessageStatus.WITHHELD,
    ),
}


@pytest.mark.parametrize("name", list(TRANSITIONS))
def test_each_transition_moves_only_the_states_it_may_leave(
    runtime: Runtime, fixed_now: datetime, name: str
) -> None:
    move, leaves, target = TRANSITIONS[name]
    ids = _one_row_per_status(runtime, fixed_now)

    won = {status: _move(runtime, move, ids[status], fixed_now) for status in ALL}

    assert {status for status, did in won.items() if did} == set(leaves)
    assert {status: _status(runtime, ids[status]) for status in ALL} == {
        status: target.value if status in leaves else status.value for status in ALL
    }


@pytest.mark.parametrize(
    "name", ["start_sending", "mark_sent", "fail", "settle_unknown", "cancel_if_open"]
)
def test_a_transition_wins_once(runtime: Runtime, fixed_now: datetime, name: str) -> None:
    move, leaves, _ = TRANSITIONS[name]
    ids = _one_row_per_status(runtime, fixed_now)
    message_id = ids[leaves[0]]

    results = [_move(runtime, move, message_id, fixed_now) for _ in range(2)]

    assert results == [True, False]


def test_two_workers_starting_one_send_at_once_on_postgresql_only_one_wins(
    postgres_url: str, tmp_path: Path, fixed_now: datetime
) -> None:
    rt = make_runtime(postgres_url, tmp_path)
    message_id = _one_row_per_status(rt, fixed_now)[MessageStatus.QUEUED]
    start = threading.Barrier(2)
    results: list[bool] = []

    def worker() -> None:
        start.wait()
        with transaction(rt.sessions) as session:
            results.append(MessageLifecycle(session).start_sending(message_id, fixed_now + LEASE))

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    rt.engine.dispose()

    assert sorted(results) == [False, True]


def test_a_withheld_message_records_its_reason_and_a_pending_communication(
    runtime: Runtime, fixed_now: datetime
) -> None:
    message_id = _one_row_per_status(runtime, fixed_now)[MessageStatus.QUEUED]

    _move(runtime, TRANSITIONS["withhold"][0], message_id, fixed_now)

    with transaction(runtime.sessions) as session:
        row = session.get(PlannedMessage, message_id)
        assert row is not None
        assert (row.reason, row.reason_detail, row.communication_status, row.lease_until) == (
            "no-consent",
            "no consented channel",
            "pending",
            None,
        )
        assert row.trace == {"consent": []}


def test_a_callback_settles_an_unknown_send_only_once(
    runtime: Runtime, fixed_now: datetime
) -> None:
    message_id = _one_row_per_status(runtime, fixed_now)[MessageStatus.UNKNOWN]

    with transaction(runtime.sessions) as session:
        lifecycle = MessageLifecycle(session)
        first = lifecycle.confirm_sent(message_id, provider="twilio", provider_message_id=SID)
        again = lifecycle.confirm_sent(message_id, provider="twilio", provider_message_id="SMx")

    with transaction(runtime.sessions) as session:
        row = session.get(PlannedMessage, message_id)
        assert row is not None
        assert (first, again, row.status, row.provider_message_id) == (True, False, "sent", SID)


def test_replanning_never_revives_a_cancellation_by_staff(
    runtime: Runtime, fixed_now: datetime
) -> None:
    row = planned_row(fixed_now, status="cancelled", reason=REASON_CANCELLED_BY_STAFF)
    with transaction(runtime.sessions) as session:
        session.add(row)

    revived = _move(runtime, TRANSITIONS["replan"][0], row.id, fixed_now)

    assert (revived, _status(runtime, row.id)) == (False, "cancelled")


def _cap_decision(rt: Runtime, send_at: datetime) -> str:
    row = planned_row(
        send_at,
        status="withheld",
        reason=REASON_CAP_REACHED,
        communication_status="pending",
        send_at=send_at,
    )
    with transaction(rt.sessions) as session:
        session.add(row)
    return row.id


def test_a_provisional_cap_decision_is_revived_by_replanning_until_its_send_time(
    runtime: Runtime, fixed_now: datetime
) -> None:
    provisional = _cap_decision(runtime, fixed_now + timedelta(hours=3))
    final = _cap_decision(runtime, fixed_now - timedelta(hours=3))
    move = TRANSITIONS["replan"][0]

    results = [_move(runtime, move, message_id, fixed_now) for message_id in (provisional, final)]

    assert results == [True, False]
    assert (_status(runtime, provisional), _status(runtime, final)) == ("planned", "withheld")


def test_only_replanning_cancels_a_provisional_cap_decision(
    runtime: Runtime, fixed_now: datetime
) -> None:
    message_id = _cap_decision(runtime, fixed_now + timedelta(hours=3))

    with transaction(runtime.sessions) as session:
        lifecycle = MessageLifecycle(session)
        by_staff = lifecycle.cancel_if_open(message_id, reason="x", trace={}, now=fixed_now)
        by_replan = lifecycle.cancel_if_open(
            message_id,
            reason="no-longer-planned",
            trace={},
            now=fixed_now,
            including_provisional_cap=True,
        )

    with transaction(runtime.sessions) as session:
        row = session.get(PlannedMessage, message_id)
        assert row is not None
        assert (by_staff, by_replan) == (False, True)
        assert (row.status, row.communication_status) == ("cancelled", "none")


@pytest.mark.parametrize(
    ("column", "value"), [("status", "delivered"), ("communication_status", "done")]
)
def test_the_database_refuses_a_status_outside_the_set(
    runtime: Runtime, fixed_now: datetime, column: str, value: str
) -> None:
    with pytest.raises(IntegrityError), transaction(runtime.sessions) as session:
        session.add(planned_row(fixed_now, **{column: value}))
        session.flush()


def test_every_migration_since_the_status_constraint_goes_down_and_up_again(
    database_url: str,
) -> None:
    from alembic.script import ScriptDirectory

    config = alembic_config(database_url)

    command.downgrade(config, "0002")
    upgrade(database_url)

    assert _current_revision(config) == ScriptDirectory.from_config(config).get_current_head()


def _current_revision(config: Any) -> str | None:
    from alembic.runtime.migration import MigrationContext

    from fhir_bridge.store.db import make_engine

    engine = make_engine(str(config.get_main_option("sqlalchemy.url")))
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()


# Re-planning racing a worker (the unsafe write the lifecycle removed).


def _wanted(send_at: datetime) -> Planned:
    return Planned(
        key=f"appointment-reminder:{APPOINTMENT_REF}:P1D",
        rule="appointment-reminder",
        purpose="appointment-reminder",
        patient_ref=PATIENT_REF,
        about=(APPOINTMENT_REF,),
        send_at=send_at,
        template="appointment_reminder",
        language="en",
        variables={},
        trace={"offset": "P1D"},
    )


def _replan(rt: Runtime, now: datetime, message: Planned) -> None:
    def planner(_snapshot: object, _config: object, at: datetime) -> Plan:
        return Plan(patient_ref=PATIENT_REF, planned_at=at, messages=(message,))

    with transaction(rt.sessions) as session:
        replan_patient(
            session,
            patient_ref=PATIENT_REF,
            patient=None,
            config=rt.rules,
            now=now,
            planner=planner,
        )


def test_replanning_never_puts_back_a_message_a_worker_started_sending_meanwhile(
    postgres_url: str, tmp_path: Path, fixed_now: datetime, monkeypatch: pytest.MonkeyPatch
) -> None:
    rt = make_runtime(postgres_url, tmp_path)
    _replan(rt, fixed_now, _wanted(fixed_now - timedelta(minutes=1)))
    with transaction(rt.sessions) as session:
        (message_id,) = session.scalars(select(PlannedMessage.id))
        assert MessageLifecycle(session).claim(message_id, fixed_now, LEASE)
    read_rows = planning.repository.messages_for_patient
    started: list[bool] = []

    def read_then_worker_starts_sending(session: Session, patient_ref: str) -> Any:
        rows = read_rows(session, patient_ref)  # re-planning has read the row as queued ...
        if not started:  # ... and a worker commits ``sending`` (once)
            with transaction(rt.sessions) as worker:
                started.append(
                    MessageLifecycle(worker).start_sending(message_id, fixed_now + LEASE)
                )
        return rows

    monkeypatch.setattr(
        planning.repository, "messages_for_patient", read_then_worker_starts_sending
    )

    _replan(rt, fixed_now, _wanted(fixed_now + timedelta(hours=2)))

    with transaction(rt.sessions) as session:
        row = session.get(PlannedMessage, message_id)
        assert row is not None
        assert started == [True]
        assert (row.status, row.send_at) == ("sending", fixed_now - timedelta(minutes=1))
    rt.engine.dispose()
