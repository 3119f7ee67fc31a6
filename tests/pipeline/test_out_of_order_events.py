"""Events of one Subscription applied out of order, or still waiting in the inbox.

Two workers may apply a Subscription's notifications in any order, and the periodic check
may count events whose notifications are stored but not applied yet. Neither is a lost
event: the EHR is asked (``$events``, else a search) only for numbers no stored
notification carries, and ``events_through`` only ever grows.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from fhir_bridge import jobs
from fhir_bridge.ingest.service import accept_notification
from fhir_bridge.runtime import Runtime
from fhir_bridge.sandbox.process import EhrServer
from fhir_bridge.sandbox.receiver import NotificationReceiver, ReceivedRequest
from fhir_bridge.store.db import transaction
from fhir_bridge.store.models import InboxNotification
from tests.pipeline.ehr_flow import (
    appointment_subscription,
    create_subscriptions,
    interactions,
    stored_ids,
    wait_for_kind,
    wait_until_active,
)
from tests.pipeline.samples import appointment, patient

pytestmark = pytest.mark.integration


def _book(ehr: EhrServer, days_ahead: int) -> dict[str, Any]:
    new_patient = copy.deepcopy(patient())
    new_patient.pop("id", None)
    created = ehr.create(new_patient)
    start = (datetime.now(UTC) + timedelta(days=days_ahead)).replace(microsecond=0)
    booked = appointment(created["id"], start=start.isoformat().replace("+00:00", "Z"))
    booked.pop("id", None)
    return ehr.create(booked)


def _store(rt: Runtime, request: ReceivedRequest) -> int:
    """Accept a delivered notification into the inbox without processing it."""
    accepted = accept_notification(
        rt.sessions,
        master_secret=rt.settings.require_notification_secret(),
        subscription_id=request.path.rstrip("/").split("/")[-1],
        authorization=request.headers.get("Authorization"),
        signature=request.headers.get("X-Signature"),
        body=request.body,
        path_type=None,
        path_id=None,
        now=rt.clock(),
        enqueue=lambda _inbox_id: None,
    )
    assert accepted.inbox_id is not None
    return accepted.inbox_id


def _three_stored_events(
    ehr: EhrServer, rt: Runtime, receiver: NotificationReceiver
) -> tuple[list[dict[str, Any]], list[int]]:
    (subscription, *_) = create_subscriptions(rt, ("Appointment",))
    assert subscription.remote_id is not None
    wait_until_active(ehr, subscription.remote_id)
    booked = [_book(ehr, days_ahead=10 + n) for n in range(3)]
    events = wait_for_kind(receiver, "event-notification", 3)
    return booked, [_store(rt, event) for event in events]


def _operations(ehr: EhrServer) -> int:
    """``$events`` and ``$status`` calls the EHR answered."""
    return interactions(ehr).get("Subscription.operation", 0)


def test_a_later_event_applied_first_asks_the_ehr_nothing_when_the_earlier_ones_are_stored(
    ehr: EhrServer, ehr_runtime: Runtime, receiver: NotificationReceiver
) -> None:
    booked, inbox_ids = _three_stored_events(ehr, ehr_runtime, receiver)

    assert jobs.process_inbox(ehr_runtime, inbox_ids[2]) == "done"

    assert _operations(ehr) == 0
    assert interactions(ehr).get("Appointment.search-type", 0) == 0
    assert stored_ids(ehr_runtime, "Appointment") == {booked[2]["id"]}
    assert appointment_subscription(ehr_runtime).events_through == 3


def test_earlier_events_applied_after_a_later_one_are_applied_and_never_lower_the_count(
    ehr: EhrServer, ehr_runtime: Runtime, receiver: NotificationReceiver
) -> None:
    booked, inbox_ids = _three_stored_events(ehr, ehr_runtime, receiver)

    for inbox_id in reversed(inbox_ids):
        assert jobs.process_inbox(ehr_runtime, inbox_id) == "done"

    assert stored_ids(ehr_runtime, "Appointment") == {b["id"] for b in booked}
    assert appointment_subscription(ehr_runtime).events_through == 3
    assert _operations(ehr) == 0


def test_the_periodic_check_does_not_recover_events_waiting_in_the_inbox(
    ehr: EhrServer, ehr_runtime: Runtime, receiver: NotificationReceiver
) -> None:
    _three_stored_events(ehr, ehr_runtime, receiver)
    before = _operations(ehr)

    assert jobs.check_subscriptions(ehr_runtime) == {"Appointment": "ok"}

    assert _operations(ehr) == before + 1  # the $status read, no $events
    assert stored_ids(ehr_runtime, "Appointment") == set()
    assert appointment_subscription(ehr_runtime).events_through == 0


def test_a_stored_notification_later_rejected_has_its_events_recovered_from_the_ehr(
    ehr: EhrServer, ehr_runtime: Runtime, receiver: NotificationReceiver
) -> None:
    booked, inbox_ids = _three_stored_events(ehr, ehr_runtime, receiver)
    assert jobs.process_inbox(ehr_runtime, inbox_ids[2]) == "done"  # trusted 1 and 2
    with transaction(ehr_runtime.sessions) as session:
        row = session.get(InboxNotification, inbox_ids[1])
        assert row is not None and row.body is not None
        damaged = copy.deepcopy(row.body)
        damaged["entry"][1]["resource"] = {**booked[1], "start": "next Tuesday at 3:30"}
        row.body = damaged

    assert jobs.process_inbox(ehr_runtime, inbox_ids[1]) == "invalid"

    assert booked[1]["id"] in stored_ids(ehr_runtime, "Appointment")
