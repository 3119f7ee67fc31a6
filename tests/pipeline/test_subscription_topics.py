"""Subscriptions tell the truth: topics are discovered and checked to fire on create and
update, healthy Subscriptions are only read, classic ones are caught up by search."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from fhir_bridge import jobs
from fhir_bridge.runtime import Runtime
from fhir_bridge.sandbox.process import EhrServer
from fhir_bridge.sandbox.receiver import NotificationReceiver
from fhir_bridge.store.db import transaction
from fhir_bridge.sync.subscriptions import TopicsRefused
from fhir_bridge.sync.topics import R5_TOPIC, install_topics
from tests.pipeline.conftest import make_runtime
from tests.pipeline.ehr_flow import (
    create_subscriptions,
    interactions,
    stored_ids,
    wait_until_active,
)
from tests.pipeline.samples import appointment, patient

pytestmark = pytest.mark.integration

BOOKED_TOPIC = "https://ehr.lakeside-fp.org/fhir/SubscriptionTopic/appointment-booked"


def _basic_topic(url: str, resource_type: str, interactions: list[str]) -> dict[str, Any]:
    """A topic as an R4 EHR publishes it (Backport IG: a Basic resource)."""
    return {
        "resourceType": "Basic",
        "code": {
            "coding": [{"system": "http://hl7.org/fhir/fhir-types", "code": "SubscriptionTopic"}]
        },
        "extension": [
            {"url": f"{R5_TOPIC}.url", "valueUri": url},
            {"url": f"{R5_TOPIC}.status", "valueCode": "active"},
            {
                "url": f"{R5_TOPIC}.resourceTrigger",
                "extension": [
                    {
                        "url": "resource",
                        "valueUri": f"http://hl7.org/fhir/StructureDefinition/{resource_type}",
                    },
                    *({"url": "supportedInteraction", "valueCode": i} for i in interactions),
                ],
            },
        ],
    }


@pytest.fixture(scope="module")
def bare_ehr_server() -> Iterator[EhrServer]:
    """An EHR with Subscriptions but none of fhir-bridge's topics."""
    with EhrServer(builtin_topics=False) as server:
        yield server


@pytest.fixture
def bare_runtime(
    bare_ehr_server: EhrServer, receiver: NotificationReceiver, sqlite_url: str, tmp_path: Path
) -> Iterator[Runtime]:
    bare_ehr_server.reset()
    rt = make_runtime(
        sqlite_url,
        tmp_path,
        ehr_base_url=bare_ehr_server.base_url,
        public_base_url=receiver.url.removesuffix("/notify"),
    )
    yield rt
    rt.ehr.close()
    rt.engine.dispose()


def _book(ehr: EhrServer) -> dict[str, Any]:
    person = {k: v for k, v in patient().items() if k not in ("id", "meta")}
    created = ehr.create(person)
    start = (datetime.now(UTC) + timedelta(days=3)).replace(microsecond=0)
    resource = appointment(created["id"], start=start.isoformat().replace("+00:00", "Z"))
    return ehr.create({k: v for k, v in resource.items() if k not in ("id", "meta")})


def test_an_appointment_booked_topic_is_refused_because_it_misses_cancellations(
    bare_ehr_server: EhrServer, bare_runtime: Runtime
) -> None:
    bare_ehr_server.create(_basic_topic(BOOKED_TOPIC, "Appointment", ["create"]))

    with pytest.raises(TopicsRefused) as refused:
        create_subscriptions(bare_runtime, ("Appointment",))

    [line] = refused.value.lines
    assert line.startswith("Appointment: no topic on the EHR fires on create and update")
    assert f"{BOOKED_TOPIC} fires on create only" in line
    assert "cancellation or reschedule" in line
    assert "fhir-bridge subscriptions topics install" in line
    assert bare_ehr_server.search("Subscription").get("total", 0) == 0


def test_the_ehrs_own_topic_that_fires_on_every_change_is_discovered_and_used(
    bare_ehr_server: EhrServer, bare_runtime: Runtime
) -> None:
    own = "https://ehr.lakeside-fp.org/fhir/SubscriptionTopic/appointment-any-change"
    bare_ehr_server.create(_basic_topic(BOOKED_TOPIC, "Appointment", ["create"]))
    bare_ehr_server.create(_basic_topic(own, "Appointment", ["create", "update", "delete"]))

    [subscription] = create_subscriptions(bare_runtime, ("Appointment",))

    assert subscription.criteria == own
    assert bare_ehr_server.read("Subscription", str(subscription.remote_id))["criteria"] == own


def test_topics_install_puts_our_topics_on_the_ehr_and_subscriptions_then_activate(
    bare_ehr_server: EhrServer, bare_runtime: Runtime
) -> None:
    outcomes = install_topics(bare_runtime.ehr, bare_runtime.settings)

    assert [outcome for _, _, outcome in outcomes] == ["installed"] * 3
    rows = create_subscriptions(bare_runtime)
    for row in rows:
        wait_until_active(bare_ehr_server, str(row.remote_id))
    assert [o for _, _, o in install_topics(bare_runtime.ehr, bare_runtime.settings)] == [
        "already on the EHR"
    ] * 3


def test_a_healthy_subscription_is_read_by_the_check_never_written(
    ehr: EhrServer, ehr_runtime: Runtime
) -> None:
    (subscription,) = create_subscriptions(ehr_runtime, ("Appointment",))
    wait_until_active(ehr, str(subscription.remote_id))
    writes_before = interactions(ehr).get("Subscription.update", 0)

    assert jobs.check_subscriptions(ehr_runtime) == {"Appointment": "ok"}
    assert jobs.check_subscriptions(ehr_runtime) == {"Appointment": "ok"}

    assert interactions(ehr).get("Subscription.update", 0) == writes_before


@pytest.fixture
def classic_runtime(
    ehr: EhrServer, receiver: NotificationReceiver, sqlite_url: str, tmp_path: Path
) -> Iterator[Runtime]:
    rt = make_runtime(
        sqlite_url,
        tmp_path,
        ehr_base_url=ehr.base_url,
        public_base_url=receiver.url.removesuffix("/notify"),
        subscription_kind="classic",
        subscription_payload="full-resource",
        classic_catch_up_seconds=60,
    )
    yield rt
    rt.ehr.close()
    rt.engine.dispose()


def _age(rt: Runtime, *, good_through: timedelta, silent_for: timedelta) -> None:
    now = datetime.now(UTC)
    with transaction(rt.sessions) as session:
        for row in jobs.sync_repository.list_subscriptions(session):
            row.good_through = now - good_through
            row.last_notification_at = now - silent_for


def test_a_lost_classic_notification_is_found_by_the_periodic_catch_up_search(
    ehr: EhrServer, classic_runtime: Runtime
) -> None:
    create_subscriptions(classic_runtime, ("Appointment",))
    lost = _book(ehr)  # its notification went to the receiver, never to us
    _age(classic_runtime, good_through=timedelta(minutes=2), silent_for=timedelta(hours=1))

    assert jobs.check_subscriptions(classic_runtime) == {"Appointment": "caught-up"}
    assert stored_ids(classic_runtime, "Appointment") == {lost["id"]}


def test_a_classic_subscription_is_never_reported_heartbeat_late(
    ehr: EhrServer, classic_runtime: Runtime
) -> None:
    create_subscriptions(classic_runtime, ("Appointment",))
    _age(classic_runtime, good_through=timedelta(seconds=0), silent_for=timedelta(hours=1))

    assert jobs.check_subscriptions(classic_runtime) == {"Appointment": "ok"}
