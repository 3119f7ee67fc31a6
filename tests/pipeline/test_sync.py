"""Keeping our copy of EHR resources current, against the fake EHR process.

Versions are applied only when newer; lost notifications are recovered with
``$events`` or, where the EHR lacks it, a ``_lastUpdated`` search.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from fhir_bridge import jobs
from fhir_bridge.runtime import Runtime
from fhir_bridge.sandbox.process import EhrServer
from fhir_bridge.sandbox.receiver import NotificationReceiver
from fhir_bridge.store.db import transaction
from fhir_bridge.sync.service import apply_reads, apply_resource, read_current
from tests.pipeline.ehr_flow import (
    appointment_subscription,
    create_subscriptions,
    forward,
    interactions,
    stored,
    stored_ids,
    wait_for_kind,
    wait_until_active,
)
from tests.pipeline.samples import appointment, patient

pytestmark = pytest.mark.integration


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


def _apply(rt: Runtime, resource: dict[str, Any]) -> str:
    with transaction(rt.sessions) as session:
        return apply_resource(session, jobs.sync_deps(rt, rt.clock()), resource)


def test_an_older_version_never_overrides_a_newer_one(ehr: EhrServer, ehr_runtime: Runtime) -> None:
    booked = _book(ehr)
    ehr.update({**booked, "status": "cancelled"})
    version_1 = ehr_runtime.ehr.vread("Appointment", booked["id"], "1")
    version_2 = ehr_runtime.ehr.read("Appointment", booked["id"])

    outcomes = [_apply(ehr_runtime, version_2), _apply(ehr_runtime, version_1)]

    assert outcomes == ["applied", "stale"]
    current = stored(ehr_runtime, "Appointment", booked["id"])
    assert current is not None
    assert (current["meta"]["versionId"], current["status"]) == ("2", "cancelled")


def test_the_same_version_twice_is_applied_once(ehr: EhrServer, ehr_runtime: Runtime) -> None:
    booked = _book(ehr)

    outcomes = [_apply(ehr_runtime, booked), _apply(ehr_runtime, copy.deepcopy(booked))]

    assert outcomes == ["applied", "duplicate"]


def test_an_id_only_event_fetches_the_focus_from_the_ehr(
    ehr: EhrServer, ehr_runtime: Runtime, receiver: NotificationReceiver
) -> None:
    (subscription, *_) = create_subscriptions(ehr_runtime, ("Appointment",))
    assert subscription.remote_id is not None
    wait_until_active(ehr, subscription.remote_id)
    booked = _book(ehr)

    (event,) = wait_for_kind(receiver, "event-notification")
    assert all("resource" not in entry for entry in event.json()["entry"][1:])
    reads_before = interactions(ehr).get("Appointment.read", 0)

    outcome = forward(ehr_runtime, event)

    assert outcome == "done"
    assert interactions(ehr)["Appointment.read"] > reads_before
    assert stored(ehr_runtime, "Appointment", booked["id"]) == booked


def test_a_deleted_focus_is_forgotten(ehr: EhrServer, ehr_runtime: Runtime) -> None:
    booked = _book(ehr)
    _apply(ehr_runtime, booked)
    ehr_runtime.ehr._http.delete(f"Appointment/{booked['id']}").raise_for_status()

    deps = jobs.sync_deps(ehr_runtime, ehr_runtime.clock())
    reads = read_current(deps, [f"Appointment/{booked['id']}"])
    with transaction(ehr_runtime.sessions) as session:
        applied = apply_reads(session, deps, reads)

    assert (reads.deleted, applied.changed) == ([f"Appointment/{booked['id']}"], 1)
    assert stored(ehr_runtime, "Appointment", booked["id"]) is None


def _subscribe_and_drop_second_event(
    ehr: EhrServer, rt: Runtime, receiver: NotificationReceiver
) -> tuple[list[dict[str, Any]], list[Any]]:
    (subscription, *_) = create_subscriptions(rt, ("Appointment",))
    assert subscription.remote_id is not None
    wait_until_active(ehr, subscription.remote_id)
    first = _book(ehr)
    wait_for_kind(receiver, "event-notification", 1)
    ehr.set_chaos(drop_next=1)
    lost = _book(ehr, days_ahead=11)
    third = _book(ehr, days_ahead=12)
    events = wait_for_kind(receiver, "event-notification", 2)
    return [first, lost, third], events


def test_a_gap_in_event_numbers_is_recovered_with_events_operation(
    ehr: EhrServer, ehr_runtime: Runtime, receiver: NotificationReceiver
) -> None:
    booked, events = _subscribe_and_drop_second_event(ehr, ehr_runtime, receiver)

    for event in events:
        forward(ehr_runtime, event)

    assert stored_ids(ehr_runtime, "Appointment") == {b["id"] for b in booked}
    assert interactions(ehr).get("Appointment.search-type", 0) == 0
    assert appointment_subscription(ehr_runtime).events_through == 3


def test_a_gap_is_recovered_by_search_when_the_ehr_has_no_events_operation(
    ehr: EhrServer, ehr_runtime: Runtime, receiver: NotificationReceiver
) -> None:
    ehr.settings(supports_events=False)
    booked, events = _subscribe_and_drop_second_event(ehr, ehr_runtime, receiver)

    for event in events:
        forward(ehr_runtime, event)

    assert stored_ids(ehr_runtime, "Appointment") == {b["id"] for b in booked}
    assert interactions(ehr)["Appointment.search-type"] >= 1


def test_a_heartbeat_counting_more_events_than_we_saw_triggers_recovery(
    ehr: EhrServer, receiver: NotificationReceiver, sqlite_url: str, tmp_path: Any
) -> None:
    from tests.pipeline.conftest import make_runtime

    rt = make_runtime(
        sqlite_url,
        tmp_path,
        ehr_base_url=ehr.base_url,
        public_base_url=receiver.url.removesuffix("/notify"),
        heartbeat_period_seconds=1,
    )
    (subscription, *_) = create_subscriptions(rt, ("Appointment",))
    assert subscription.remote_id is not None
    wait_until_active(ehr, subscription.remote_id)
    ehr.set_chaos(drop_next=1)
    lost = _book(ehr)

    heartbeat = wait_for_kind(receiver, "heartbeat")[0]
    forward(rt, heartbeat)

    assert stored_ids(rt, "Appointment") == {lost["id"]}
    assert appointment_subscription(rt).events_through == 1
    rt.ehr.close()
    rt.engine.dispose()


def test_a_subscription_in_error_is_reactivated_and_caught_up_by_search(
    ehr: EhrServer, ehr_runtime: Runtime
) -> None:
    (subscription, *_) = create_subscriptions(ehr_runtime, ("Appointment",))
    assert subscription.remote_id is not None
    wait_until_active(ehr, subscription.remote_id)
    ehr.force_error(subscription.remote_id)
    missed = _book(ehr)

    results = jobs.check_subscriptions(ehr_runtime)

    assert results == {"Appointment": "reactivated"}
    assert stored_ids(ehr_runtime, "Appointment") == {missed["id"]}
    wait_until_active(ehr, subscription.remote_id)
    assert jobs.check_subscriptions(ehr_runtime) == {"Appointment": "ok"}


def test_a_silent_subscription_past_two_heartbeats_is_reported_late(
    ehr: EhrServer, ehr_runtime: Runtime
) -> None:
    (subscription, *_) = create_subscriptions(ehr_runtime, ("Appointment",))
    assert subscription.remote_id is not None
    wait_until_active(ehr, subscription.remote_id)
    silent_since = datetime.now(UTC) - timedelta(minutes=10)
    with transaction(ehr_runtime.sessions) as session:
        row = session.merge(subscription)
        row.heartbeat_period, row.last_notification_at = 60, silent_since

    assert jobs.check_subscriptions(ehr_runtime) == {"Appointment": "heartbeat-late"}
