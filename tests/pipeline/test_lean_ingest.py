"""Issue #10 (part A): lean ingest, batch claims, due-now delivery, queues by kind.

The API stores a group of notifications with one INSERT and answers each on its own;
the worker validates fully and records what it rejects; a message already due when it is
planned goes to delivery right after that commit; each kind of work has its own queue;
the relay resends only what was really lost.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from fhir_bridge import jobs, tasks
from fhir_bridge.api import notifications
from fhir_bridge.api.app import create_app
from fhir_bridge.ingest.auth import subscription_token
from fhir_bridge.ingest.parsing import InvalidNotification
from fhir_bridge.ingest.service import (
    Accepted,
    NotAuthenticated,
    check_notification,
    store_notifications,
)
from fhir_bridge.outreach import repository
from fhir_bridge.runtime import Runtime
from fhir_bridge.store.db import transaction
from fhir_bridge.store.models import InboxNotification, PlannedMessage, Subscription
from fhir_bridge.sync import repository as sync_repository
from rules.model import Plan
from rules.model import PlannedMessage as Planned
from tests.conftest import NOTIFICATION_SECRET
from tests.pipeline.conftest import add_subscription, make_runtime
from tests.pipeline.messages import APPOINTMENT_REF, PATIENT_REF, planned_row
from tests.pipeline.samples import (
    PATIENT_NAME,
    appointment,
    notification_bundle,
    patient,
    r4_status,
)

SUBSCRIPTION_ID = "3f1d2c4b-5a69-4e7f-8a1b-2c3d4e5f6a7b"
OTHER_SUBSCRIPTION_ID = "0d9c8b7a-6f5e-4d3c-9b2a-1f0e9d8c7b6a"
UNKNOWN_SUBSCRIPTION_ID = "9a8b7c6d-0000-4000-8000-000000000000"
LEASE = timedelta(minutes=2)


@pytest.fixture
def runtime(database_url: str, tmp_path: Path) -> Iterator[Runtime]:
    # An EHR nobody answers at: these specifications never reach it.
    rt = make_runtime(database_url, tmp_path, ehr_base_url="http://127.0.0.1:9/fhir")
    add_subscription(rt, subscription_id=SUBSCRIPTION_ID)
    yield rt
    rt.engine.dispose()


def _event(number: int, *, subscription: str = "sub-appointment-7731") -> dict[str, Any]:
    status = r4_status(
        "event-notification",
        events=[(number, "Appointment/eWLhfjXHp4RUczv2VLqhCGQ3")],
        events_since_start=number,
    )
    for parameter in status["parameter"]:
        if parameter["name"] == "subscription":
            parameter["valueReference"] = {"reference": f"Subscription/{subscription}"}
    return notification_bundle(status)


def _checked(rt: Runtime, body: dict[str, Any], subscription_id: str = SUBSCRIPTION_ID) -> Any:
    raw = json.dumps(body).encode()
    return check_notification(
        master_secret=NOTIFICATION_SECRET,
        subscription_id=subscription_id,
        authorization=f"Bearer {subscription_token(NOTIFICATION_SECRET, subscription_id)}",
        signature=None,
        body=raw,
        path_type=None,
        path_id=None,
        now=rt.clock(),
    )


def test_one_group_commit_answers_each_notification_on_its_own(runtime: Runtime) -> None:
    batch = [
        _checked(runtime, _event(1)),
        _checked(runtime, _event(2)),
        _checked(runtime, _event(1)),  # the EHR retried event 1 within the same batch
        _checked(runtime, _event(3), UNKNOWN_SUBSCRIPTION_ID),
        _checked(runtime, _event(4, subscription="sub-somebody-else")),
    ]

    with transaction(runtime.sessions) as session:
        outcomes = store_notifications(session.connection(), batch, enqueued_at=runtime.clock())

    first, second, retry, unknown, mismatched = outcomes
    assert isinstance(first, Accepted) and not first.duplicate
    assert isinstance(second, Accepted) and not second.duplicate
    assert isinstance(retry, Accepted) and retry.duplicate
    assert isinstance(unknown, NotAuthenticated)
    assert isinstance(mismatched, InvalidNotification)
    with transaction(runtime.sessions) as session:
        stored = session.scalars(select(InboxNotification.id).order_by(InboxNotification.id))
        assert list(stored) == [first.inbox_id, second.inbox_id]


def test_concurrent_notifications_are_all_stored_and_woken_once_each(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    woken: list[int] = []

    def wake(ids: list[int]) -> bool:
        woken.extend(ids)
        return True

    monkeypatch.setattr(notifications, "wake_worker", wake)
    headers = {
        "Authorization": f"Bearer {subscription_token(NOTIFICATION_SECRET, SUBSCRIPTION_ID)}",
        "Content-Type": "application/fhir+json",
    }
    with TestClient(create_app(runtime)) as client:

        def post(number: int) -> int:
            body = json.dumps(_event(number))
            return client.post(
                f"/notifications/{SUBSCRIPTION_ID}", content=body, headers=headers
            ).status_code

        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(post, [*range(1, 25), *range(1, 9)]))  # 8 redeliveries

    assert answers == [200] * 32
    with transaction(runtime.sessions) as session:
        ids = sorted(session.scalars(select(InboxNotification.id)))
    assert len(ids) == 24
    _wait_for(lambda: sorted(woken) == ids)


def _wait_for(condition: Any, seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def test_a_resource_that_fails_full_validation_is_rejected_by_the_worker_and_counted(
    runtime: Runtime,
) -> None:
    bad = appointment(start="next Tuesday at 3:30")
    bad["description"] = f"Control con {PATIENT_NAME}"
    status = r4_status(
        "event-notification", events=[(1, f"Appointment/{bad['id']}")], events_since_start=1
    )
    note = _checked(runtime, notification_bundle(status, bad))  # the API checks structure only
    with transaction(runtime.sessions) as session:
        (accepted,) = store_notifications(session.connection(), [note], enqueued_at=None)
    assert isinstance(accepted, Accepted) and accepted.inbox_id is not None

    outcome = jobs.process_inbox(runtime, accepted.inbox_id)

    assert outcome == "invalid"
    with transaction(runtime.sessions) as session:
        row = session.get(InboxNotification, accepted.inbox_id)
        subscription = session.get(Subscription, SUBSCRIPTION_ID)
        assert row is not None and subscription is not None
        assert row.status == "rejected"
        assert row.error_code is not None and "start" in row.error_code
        assert "next Tuesday" not in row.error_code and PATIENT_NAME not in row.error_code
        assert subscription.notifications_rejected == 1


def test_a_resource_whose_patient_reference_is_not_an_object_is_refused_by_the_api(
    runtime: Runtime,
) -> None:
    bad = appointment()
    bad["participant"] = ["Patient/eJzlzKe3KPzAV5TtkxmNivQ3"]
    status = r4_status(
        "event-notification", events=[(1, f"Appointment/{bad['id']}")], events_since_start=1
    )

    with pytest.raises(InvalidNotification):
        _checked(runtime, notification_bundle(status, bad))


def _add(rt: Runtime, rows: list[PlannedMessage]) -> list[str]:
    with transaction(rt.sessions) as session:
        session.add_all(rows)
    return [row.id for row in rows]


def test_a_batch_claim_takes_due_messages_up_to_its_limit_and_each_once(
    runtime: Runtime, fixed_now: datetime
) -> None:
    due = _add(runtime, [planned_row(fixed_now) for _ in range(5)])
    later = _add(runtime, [planned_row(fixed_now, send_at=fixed_now + timedelta(hours=3))])

    with transaction(runtime.sessions) as session:
        first = repository.claim_batch(session, fixed_now, LEASE, limit=3)
    with transaction(runtime.sessions) as session:
        second = repository.claim_batch(session, fixed_now, LEASE, limit=3)
    with transaction(runtime.sessions) as session:
        third = repository.claim_batch(session, fixed_now, LEASE, limit=3)

    assert len(first) == 3 and len(second) == 2 and third == []
    assert sorted(first + second) == sorted(due)
    with transaction(runtime.sessions) as session:
        statuses = {row.id: row.status for row in session.scalars(select(PlannedMessage))}
    assert {statuses[i] for i in due} == {"queued"}
    assert statuses[later[0]] == "planned"


def test_a_queued_message_whose_lease_ran_out_is_claimed_again(
    runtime: Runtime, fixed_now: datetime
) -> None:
    (message_id,) = _add(runtime, [planned_row(fixed_now)])
    with transaction(runtime.sessions) as session:
        assert repository.claim_batch(session, fixed_now, LEASE) == [message_id]
        assert repository.claim_batch(session, fixed_now + timedelta(minutes=1), LEASE) == []

    with transaction(runtime.sessions) as session:
        again = repository.claim_batch(session, fixed_now + LEASE + timedelta(seconds=1), LEASE)

    assert again == [message_id]


def _due_now_planner(now: datetime) -> Any:
    message = Planned(
        key=f"appointment-reminder:{APPOINTMENT_REF}:PT2H",
        rule="appointment-reminder",
        purpose="appointment-reminder",
        patient_ref=PATIENT_REF,
        about=(APPOINTMENT_REF,),
        send_at=now - timedelta(seconds=1),
        template="appointment_reminder",
        language="es",
        variables={},
        trace={},
    )
    return lambda _snapshot, _config, at: Plan(
        patient_ref=PATIENT_REF, planned_at=at, messages=(message,)
    )


def _known_patient(rt: Runtime, now: datetime) -> None:
    with transaction(rt.sessions) as session:
        sync_repository.save_state(
            session,
            None,
            resource=patient(),
            version_id="1",
            last_updated=None,
            patient_ref=PATIENT_REF,
            now=now,
        )


def _recorded_sends(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, tuple[Any, ...]]]:
    sent: list[tuple[str, tuple[Any, ...]]] = []

    def send(name: str, *args: Any) -> bool:
        sent.append((name, args))
        return True

    monkeypatch.setattr(tasks, "try_enqueue", send)
    return sent


def test_a_message_due_when_planned_is_handed_to_delivery_right_after_the_commit(
    runtime: Runtime, fixed_now: datetime, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent = _recorded_sends(monkeypatch)
    _known_patient(runtime, fixed_now)
    hook = jobs.patient_changed_hook(runtime, fixed_now, planner=_due_now_planner(fixed_now))

    with transaction(runtime.sessions) as session:
        hook(session, PATIENT_REF)
        assert sent == [], "nothing is enqueued before the commit"

    with transaction(runtime.sessions) as session:
        row = session.scalar(select(PlannedMessage))
        assert row is not None
        assert row.status == "queued"
    assert sent == [("fhir_bridge.deliver", (row.id,))]


def test_a_due_message_from_a_rolled_back_planning_is_never_enqueued(
    runtime: Runtime, fixed_now: datetime, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent = _recorded_sends(monkeypatch)
    _known_patient(runtime, fixed_now)
    hook = jobs.patient_changed_hook(runtime, fixed_now, planner=_due_now_planner(fixed_now))

    with pytest.raises(RuntimeError), transaction(runtime.sessions) as session:
        hook(session, PATIENT_REF)
        raise RuntimeError("the EHR update failed to apply")

    assert sent == []
    with transaction(runtime.sessions) as session:
        assert session.scalar(select(PlannedMessage)) is None


def test_each_kind_of_work_has_a_queue_named_after_the_configured_one() -> None:
    routes = tasks.celery_config()["task_routes"]
    base = tasks.get_settings().queue_name

    assert routes["fhir_bridge.process_notifications"] == f"{base}.ingest"
    assert routes["fhir_bridge.deliver"] == f"{base}.delivery"
    assert routes["fhir_bridge.write_communication"] == f"{base}.writeback"
    assert routes["fhir_bridge.dispatch_due"] == f"{base}.periodic"


def test_a_worker_takes_every_queue_unless_given_kinds() -> None:
    assert tasks.worker_queues("clinic-7") == [
        "clinic-7",
        "clinic-7.ingest",
        "clinic-7.delivery",
        "clinic-7.writeback",
        "clinic-7.periodic",
    ]
    assert tasks.worker_queues("clinic-7", ["delivery", "writeback"]) == [
        "clinic-7.delivery",
        "clinic-7.writeback",
    ]
    with pytest.raises(ValueError, match="unknown queue kind"):
        tasks.worker_queues("clinic-7", ["deliveries"])


def test_a_stored_notification_is_not_relayed_while_its_wake_up_is_fresh(
    runtime: Runtime, fixed_now: datetime
) -> None:
    runtime.clock = lambda: fixed_now
    with transaction(runtime.sessions) as session:
        (accepted,) = store_notifications(
            session.connection(), [_checked(runtime, _event(1))], enqueued_at=fixed_now
        )
    assert isinstance(accepted, Accepted)

    assert jobs.inbox_to_relay(runtime) == []
    runtime.clock = lambda: fixed_now + runtime.lease + timedelta(seconds=1)
    assert jobs.inbox_to_relay(runtime) == [accepted.inbox_id]


def test_the_relay_resends_a_pending_write_back_once_per_lease(
    runtime: Runtime, fixed_now: datetime
) -> None:
    settled = fixed_now - timedelta(minutes=1)
    (message_id,) = _add(
        runtime,
        [
            planned_row(
                settled,
                status="withheld",
                reason="no-consent",
                communication_status="pending",
                updated_at=settled,
            )
        ],
    )
    runtime.clock = lambda: fixed_now

    assert jobs.writebacks_to_relay(runtime) == [message_id]
    assert jobs.writebacks_to_relay(runtime) == []
    runtime.clock = lambda: fixed_now + runtime.lease + timedelta(seconds=1)
    assert jobs.writebacks_to_relay(runtime) == [message_id]
    with transaction(runtime.sessions) as session:
        row = session.get(PlannedMessage, message_id)
        assert row is not None and row.updated_at == settled
