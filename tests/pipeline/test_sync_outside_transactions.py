"""Creating Subscriptions, the Subscription check and polling talk to the EHR with no
database transaction open, and a Subscription the EHR keeps putting in ``error`` is
re-requested with backoff.

Every EHR call the runtime's client makes is observed: at that moment no database
connection may be checked out of the pool (a session holding a transaction holds one).
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest
from sqlalchemy.pool import QueuePool

from fhir_bridge import jobs
from fhir_bridge.runtime import Runtime
from fhir_bridge.sandbox.process import EhrServer
from fhir_bridge.settings import SUBSCRIBED_TYPES
from fhir_bridge.sync.cli import describe_row
from fhir_bridge.sync.subscriptions import next_rerequest_at
from tests.pipeline.conftest import make_runtime
from tests.pipeline.ehr_flow import (
    appointment_subscription,
    create_subscriptions,
    interactions,
    stored_ids,
    wait_until_active,
)
from tests.pipeline.samples import appointment, patient

pytestmark = pytest.mark.integration

EHR_CALLS = ("read", "search_all", "operation", "update", "create")


def observe_ehr_calls(rt: Runtime, monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """(EHR call, database connections in use at that moment), for every call from now on."""
    calls: list[tuple[str, int]] = []
    for name in EHR_CALLS:
        original = getattr(rt.ehr, name)

        def observed(*args: Any, _original: Any = original, _name: str = name, **kw: Any) -> Any:
            calls.append((_name, cast(QueuePool, rt.engine.pool).checkedout()))
            return _original(*args, **kw)

        monkeypatch.setattr(rt.ehr, name, observed)
    return calls


def _new(resource: dict[str, Any]) -> dict[str, Any]:
    fresh = copy.deepcopy(resource)
    fresh.pop("id", None)
    fresh.pop("meta", None)
    return fresh


def _book(ehr: EhrServer, days_ahead: int = 3) -> dict[str, Any]:
    """A booked Appointment for a newly registered patient."""
    created_patient = ehr.create(_new(patient()))
    start = (datetime.now(UTC) + timedelta(days=days_ahead)).replace(microsecond=0)
    return ehr.create(
        _new(appointment(created_patient["id"], start=start.isoformat().replace("+00:00", "Z")))
    )


def _in_error(ehr: EhrServer, rt: Runtime) -> str:
    (subscription, *_) = create_subscriptions(rt, ("Appointment",))
    assert subscription.remote_id is not None
    wait_until_active(ehr, subscription.remote_id)
    ehr.force_error(subscription.remote_id)
    return subscription.remote_id


def test_creating_subscriptions_calls_the_ehr_with_no_transaction_open(
    ehr: EhrServer, ehr_runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = observe_ehr_calls(ehr_runtime, monkeypatch)

    created = create_subscriptions(ehr_runtime)

    assert {"search_all", "create"} <= {name for name, _ in calls}
    assert [open_ for _, open_ in calls] == [0] * len(calls)
    assert [row.resource_type for row in created] == list(SUBSCRIBED_TYPES)
    for row in created:
        assert row.remote_id is not None
        assert ehr.read("Subscription", row.remote_id)["channel"]["endpoint"] == row.endpoint


def test_a_new_subscription_is_stored_before_the_ehr_is_asked_to_create_it(
    ehr: EhrServer, ehr_runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The EHR's handshake may arrive before ``create`` returns: it must find our row."""
    stored_when_created: list[tuple[str, str | None]] = []
    create = ehr_runtime.ehr.create

    def create_and_look(resource: dict[str, Any]) -> dict[str, Any]:
        row = appointment_subscription(ehr_runtime)
        stored_when_created.append((row.endpoint, row.remote_id))
        return create(resource)

    monkeypatch.setattr(ehr_runtime.ehr, "create", create_and_look)

    (subscription,) = create_subscriptions(ehr_runtime, ("Appointment",))

    assert stored_when_created == [(subscription.endpoint, None)]
    assert subscription.endpoint.endswith(f"/notifications/{subscription.id}")
    assert appointment_subscription(ehr_runtime).remote_id == subscription.remote_id


def test_creating_subscriptions_again_reactivates_one_in_error_with_no_transaction_open(
    ehr: EhrServer, ehr_runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    remote_id = _in_error(ehr, ehr_runtime)
    calls = observe_ehr_calls(ehr_runtime, monkeypatch)

    (again,) = create_subscriptions(ehr_runtime, ("Appointment",))

    assert ("read", 0) in calls and ("update", 0) in calls
    assert [open_ for _, open_ in calls] == [0] * len(calls)
    assert "create" not in {name for name, _ in calls}
    assert again.remote_id == remote_id
    wait_until_active(ehr, remote_id)


def test_reactivating_a_subscription_in_error_calls_the_ehr_with_no_transaction_open(
    ehr: EhrServer, ehr_runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    _in_error(ehr, ehr_runtime)
    missed = _book(ehr)
    calls = observe_ehr_calls(ehr_runtime, monkeypatch)

    assert jobs.check_subscriptions(ehr_runtime) == {"Appointment": "reactivated"}

    assert {"read", "update", "search_all"} <= {name for name, _ in calls}
    assert [open_ for _, open_ in calls] == [0] * len(calls)
    assert stored_ids(ehr_runtime, "Appointment") == {missed["id"]}


def test_recovering_an_event_gap_calls_the_ehr_with_no_transaction_open(
    ehr: EhrServer, ehr_runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    (subscription, *_) = create_subscriptions(ehr_runtime, ("Appointment",))
    assert subscription.remote_id is not None
    wait_until_active(ehr, subscription.remote_id)
    unseen = _book(ehr)  # its notification reaches the receiver, never the bridge
    calls = observe_ehr_calls(ehr_runtime, monkeypatch)

    assert jobs.check_subscriptions(ehr_runtime) == {"Appointment": "gap"}

    assert "operation" in {name for name, _ in calls}
    assert [open_ for _, open_ in calls] == [0] * len(calls)
    assert stored_ids(ehr_runtime, "Appointment") == {unseen["id"]}
    assert appointment_subscription(ehr_runtime).events_through == 1


def test_system_polling_searches_with_no_transaction_open(
    ehr: EhrServer, ehr_runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    booked = _book(ehr)
    calls = observe_ehr_calls(ehr_runtime, monkeypatch)

    applied = jobs.poll(ehr_runtime)

    assert applied["Appointment"] == 1
    assert "search_all" in {name for name, _ in calls}
    assert [open_ for _, open_ in calls] == [0] * len(calls)
    assert stored_ids(ehr_runtime, "Appointment") == {booked["id"]}


def test_window_polling_re_reads_a_vanished_appointment_with_no_transaction_open(
    ehr: EhrServer, sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rt = make_runtime(
        sqlite_url, tmp_path, ehr_base_url=ehr.base_url, poll_search="per-day", poll_window_days=4
    )
    booked = _book(ehr)
    jobs.poll(rt)
    rt.ehr._http.delete(f"Appointment/{booked['id']}").raise_for_status()
    calls = observe_ehr_calls(rt, monkeypatch)

    jobs.poll(rt)

    assert ("read", 0) in calls
    assert [open_ for _, open_ in calls] == [0] * len(calls)
    assert stored_ids(rt, "Appointment") == set()
    rt.ehr.close()
    rt.engine.dispose()


def test_a_subscription_the_ehr_keeps_in_error_is_re_requested_with_growing_waits(
    ehr: EhrServer, ehr_runtime: Runtime
) -> None:
    remote_id = _in_error(ehr, ehr_runtime)
    start = datetime.now(UTC)
    ehr_runtime.clock = lambda: start
    assert jobs.check_subscriptions(ehr_runtime) == {"Appointment": "reactivated"}
    wait_until_active(ehr, remote_id)
    ehr.force_error(remote_id)
    updates = interactions(ehr).get("Subscription.update", 0)

    ehr_runtime.clock = lambda: start + timedelta(seconds=59)
    early = jobs.check_subscriptions(ehr_runtime)
    ehr_runtime.clock = lambda: start + timedelta(seconds=61)
    due = jobs.check_subscriptions(ehr_runtime)

    assert (early, due) == ({"Appointment": "backing-off"}, {"Appointment": "reactivated"})
    assert interactions(ehr)["Subscription.update"] == updates + 1
    row = appointment_subscription(ehr_runtime)
    assert row.rerequest_count == 2
    assert next_rerequest_at(row) == start + timedelta(seconds=61 + 120)
    assert describe_row(row)["next_rerequest_at"] == (start + timedelta(seconds=181)).isoformat()


def test_the_backoff_starts_over_once_the_ehr_reports_the_subscription_active(
    ehr: EhrServer, ehr_runtime: Runtime
) -> None:
    remote_id = _in_error(ehr, ehr_runtime)
    assert jobs.check_subscriptions(ehr_runtime) == {"Appointment": "reactivated"}
    wait_until_active(ehr, remote_id)

    assert jobs.check_subscriptions(ehr_runtime) == {"Appointment": "ok"}

    row = appointment_subscription(ehr_runtime)
    assert (row.rerequest_count, row.rerequested_at, next_rerequest_at(row)) == (0, None, None)
