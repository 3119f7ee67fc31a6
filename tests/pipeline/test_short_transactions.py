"""Short transactions: no EHR call while a database lock is held, and no race on one resource.

Sync reads the EHR first (id-only focuses, re-reads of versions it cannot order) and then
applies in a short transaction; write-back reads its row, releases it, calls the EHR and
records the result with a conditional update. Two versions of one resource applied at once
never collide on the primary key, and the newest wins.
"""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from fhir_bridge import jobs, tasks
from fhir_bridge.api import notifications
from fhir_bridge.api.app import create_app
from fhir_bridge.ingest import repository as inbox_repository
from fhir_bridge.ingest.auth import subscription_token
from fhir_bridge.ingest.service import accept_notification
from fhir_bridge.runtime import Runtime
from fhir_bridge.sandbox.process import EhrServer
from fhir_bridge.store.db import transaction
from fhir_bridge.store.models import PlannedMessage, ResourceState
from fhir_bridge.sync.service import NEEDS_REREAD, SyncDeps, apply_resource
from tests.conftest import NOTIFICATION_SECRET
from tests.pipeline.conftest import add_subscription, make_runtime
from tests.pipeline.ehr_flow import interactions, stored
from tests.pipeline.messages import planned_row
from tests.pipeline.samples import appointment, notification_bundle, patient, r4_status
from tests.support.hanging_proxy import hanging_proxy

pytestmark = pytest.mark.integration

SUBSCRIPTION_ID = "3f1d2c4b-5a69-4e7f-8a1b-2c3d4e5f6a7b"
FHIR_JSON = "application/fhir+json"


def _new(resource: dict[str, Any]) -> dict[str, Any]:
    fresh = copy.deepcopy(resource)
    fresh.pop("id", None)
    fresh.pop("meta", None)
    return fresh


def _book(ehr: EhrServer, days_ahead: int = 10) -> dict[str, Any]:
    created_patient = ehr.create(_new(patient()))
    start = (datetime.now(UTC) + timedelta(days=days_ahead)).replace(microsecond=0)
    return ehr.create(
        _new(appointment(created_patient["id"], start=start.isoformat().replace("+00:00", "Z")))
    )


def _bearer() -> str:
    return f"Bearer {subscription_token(NOTIFICATION_SECRET, SUBSCRIPTION_ID)}"


def _accept(rt: Runtime, body: dict[str, Any]) -> int:
    accepted = accept_notification(
        rt.sessions,
        master_secret=NOTIFICATION_SECRET,
        subscription_id=SUBSCRIPTION_ID,
        authorization=_bearer(),
        signature=None,
        body=json.dumps(body).encode(),
        path_type=None,
        path_id=None,
        now=rt.clock(),
        enqueue=lambda _inbox_id: None,
    )
    assert accepted.inbox_id is not None
    return accepted.inbox_id


def _id_only(*focuses: tuple[int, str]) -> dict[str, Any]:
    last = max(number for number, _ in focuses)
    return notification_bundle(
        r4_status("event-notification", events=list(focuses), events_since_start=last)
    )


def _full_resource(number: int, resource: dict[str, Any]) -> dict[str, Any]:
    focus = f"{resource['resourceType']}/{resource['id']}"
    status = r4_status("event-notification", events=[(number, focus)], events_since_start=number)
    return notification_bundle(status, resource)


def test_a_pushed_version_we_cannot_order_asks_for_a_re_read_without_calling_the_ehr(
    ehr: EhrServer, ehr_runtime: Runtime
) -> None:
    booked = _book(ehr)
    with transaction(ehr_runtime.sessions) as session:
        apply_resource(session, jobs.sync_deps(ehr_runtime, ehr_runtime.clock()), booked)
    opaque = {**copy.deepcopy(booked), "status": "cancelled", "meta": {"versionId": "W-8f3a"}}
    requests_before = interactions(ehr)

    with transaction(ehr_runtime.sessions) as session:
        outcome = apply_resource(
            session, jobs.sync_deps(ehr_runtime, ehr_runtime.clock()), opaque, current=False
        )

    assert outcome == NEEDS_REREAD
    assert interactions(ehr) == requests_before
    current = stored(ehr_runtime, "Appointment", booked["id"])
    assert current is not None
    assert current["status"] == "booked"


def test_a_notification_version_we_cannot_order_is_settled_by_a_re_read(
    ehr: EhrServer, ehr_runtime: Runtime
) -> None:
    add_subscription(ehr_runtime, subscription_id=SUBSCRIPTION_ID)
    booked = _book(ehr)
    jobs.process_inbox(ehr_runtime, _accept(ehr_runtime, _full_resource(1, booked)))
    cancelled = ehr.update({**booked, "status": "cancelled"})
    opaque = {**copy.deepcopy(booked), "meta": {"versionId": "W-8f3a"}}
    reads_before = interactions(ehr).get("Appointment.read", 0)

    outcome = jobs.process_inbox(ehr_runtime, _accept(ehr_runtime, _full_resource(2, opaque)))

    assert outcome == "done"
    assert interactions(ehr)["Appointment.read"] == reads_before + 1
    current = stored(ehr_runtime, "Appointment", booked["id"])
    assert current is not None
    assert (current["meta"]["versionId"], current["status"]) == (
        cancelled["meta"]["versionId"],
        "cancelled",
    )


@pytest.fixture
def postgres_runtime(ehr: EhrServer, postgres_url: str, tmp_path: Path) -> Iterator[Runtime]:
    rt = make_runtime(postgres_url, tmp_path, ehr_base_url=ehr.base_url, ehr_max_attempts=2)
    yield rt
    rt.ehr.close()
    rt.engine.dispose()


def _versions(resource: dict[str, Any], count: int) -> list[dict[str, Any]]:
    """Versions 1..count of one Appointment, as the EHR would number them."""
    start = datetime(2026, 12, 8, 15, 30, tzinfo=UTC)
    versions = []
    for number in range(1, count + 1):
        version = copy.deepcopy(resource)
        version["meta"] = {
            "versionId": str(number),
            "lastUpdated": (start + timedelta(seconds=number)).isoformat().replace("+00:00", "Z"),
        }
        version["comment"] = f"version {number}"
        versions.append(version)
    return versions


def test_versions_of_one_resource_applied_at_once_never_collide_and_the_newest_wins(
    postgres_runtime: Runtime,
) -> None:
    rt = postgres_runtime
    versions = _versions(appointment(appointment_id="eQx7Hd2kVfLm9Rt3Wc8Zp5N1"), 6)
    start = threading.Barrier(len(versions))
    outcomes: list[str] = []
    errors: list[BaseException] = []

    def apply(version: dict[str, Any]) -> None:
        deps = SyncDeps(
            ehr=rt.ehr, now=rt.clock(), skew=rt.skew, on_patient_changed=lambda _s, _p: None
        )
        try:
            start.wait()
            with transaction(rt.sessions) as session:
                outcomes.append(apply_resource(session, deps, version))
        except BaseException as exc:  # collected, asserted below
            errors.append(exc)

    threads = [threading.Thread(target=apply, args=(v,)) for v in reversed(versions)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert "applied" in outcomes and set(outcomes) <= {"applied", "stale"}
    with transaction(rt.sessions) as session:
        rows = list(session.scalars(select(ResourceState)))
    assert [(row.resource_id, row.version_id) for row in rows] == [
        ("eQx7Hd2kVfLm9Rt3Wc8Zp5N1", "6")
    ]
    assert rows[0].body["comment"] == "version 6"


@pytest.fixture
def hanging_ehr_runtime(
    ehr: EhrServer, sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Runtime, Any]]:
    """SQLite (one write lock for everyone) behind an EHR that hangs on one Appointment."""
    monkeypatch.setattr(notifications, "wake_worker", lambda _inbox_ids: True)
    with hanging_proxy(ehr.origin, r"^GET /fhir/Appointment/slow-") as proxy:
        rt = make_runtime(sqlite_url, tmp_path, ehr_base_url=f"{proxy.base_url}/fhir")
        add_subscription(rt, subscription_id=SUBSCRIPTION_ID)
        yield rt, proxy
        proxy.release()
        rt.ehr.close()
        rt.engine.dispose()


def test_a_notification_is_accepted_while_a_worker_waits_on_a_hanging_ehr_on_sqlite(
    ehr: EhrServer, hanging_ehr_runtime: tuple[Runtime, Any]
) -> None:
    rt, proxy = hanging_ehr_runtime
    quick = _book(ehr)
    slow = ehr.update({**_book(ehr, days_ahead=11), "id": "slow-eMv4Rk2Tq8"})
    first = _accept(
        rt, _id_only((1, f"Appointment/{quick['id']}"), (2, f"Appointment/{slow['id']}"))
    )
    worker_outcome: list[str] = []
    worker = threading.Thread(target=lambda: worker_outcome.append(jobs.process_inbox(rt, first)))
    worker.start()
    assert proxy.holding.wait(30), "the worker never reached the slow EHR read"

    with TestClient(create_app(rt)) as client:
        response = client.post(
            f"/notifications/{SUBSCRIPTION_ID}",
            content=json.dumps(_id_only((3, f"Appointment/{quick['id']}"))),
            headers={"Authorization": _bearer(), "Content-Type": FHIR_JSON},
        )
    proxy.release()
    worker.join(60)

    assert response.status_code == 200
    assert worker_outcome == ["done"]
    assert stored(rt, "Appointment", slow["id"]) is not None


def test_writing_back_holds_no_row_lock_while_the_ehr_creates_the_communication(
    ehr: EhrServer, postgres_url: str, tmp_path: Path, fixed_now: datetime
) -> None:
    with hanging_proxy(ehr.origin, r"^POST /fhir/Communication") as proxy:
        rt = make_runtime(postgres_url, tmp_path, ehr_base_url=f"{proxy.base_url}/fhir")
        try:
            message = _sent_message(fixed_now)
            with transaction(rt.sessions) as session:
                session.add(message)
            outcome: list[str] = []
            writer = threading.Thread(
                target=lambda: outcome.append(jobs.write_back(rt, message.id))
            )
            writer.start()
            assert proxy.holding.wait(30), "write-back never reached the EHR"

            with transaction(rt.sessions) as session:
                locked = session.scalar(
                    select(PlannedMessage.id)
                    .where(PlannedMessage.id == message.id)
                    .with_for_update(nowait=True)
                )
            proxy.release()
            writer.join(60)
        finally:
            proxy.release()
            rt.ehr.close()
            rt.engine.dispose()

    assert locked == message.id
    assert outcome == ["written"]


def _sent_message(now: datetime) -> PlannedMessage:
    return planned_row(
        now,
        status="sent",
        channel="sms",
        address="+15555550123",
        provider="twilio",
        provider_message_id="SM5c1f0e8d2b4a4f6e9d7c3b2a1f0e9d8c",
        delivery_status="accepted",
        sent_at=now,
        text="Riverside Clinic: your visit is Tue Dec 8 at 10:30 AM. Reply STOP to opt out.",
        communication_status="pending",
    )


def test_work_is_enqueued_only_after_its_transaction_commits(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rt = make_runtime(sqlite_url, tmp_path)
    sent: list[tuple[str, tuple[Any, ...]]] = []

    def record(name: str, *args: Any) -> bool:
        sent.append((name, args))
        return True

    monkeypatch.setattr(tasks, "try_enqueue", record)
    add_subscription(rt, subscription_id=SUBSCRIPTION_ID)

    with pytest.raises(RuntimeError), tasks.unit_of_work(rt.sessions) as (session, after):
        after.add("fhir_bridge.process_notification", 41)
        raise RuntimeError("the transaction fails")
    inbox_id = _accept(rt, _id_only((1, "Appointment/eWLhfjXHp4RUczv2VLqhCGQ3")))
    with tasks.unit_of_work(rt.sessions) as (session, after):
        inbox_repository.mark_enqueued(session, [inbox_id], rt.clock())
        after.add("fhir_bridge.process_notification", inbox_id)
        assert sent == []

    assert sent == [("fhir_bridge.process_notification", (inbox_id,))]
    rt.engine.dispose()
