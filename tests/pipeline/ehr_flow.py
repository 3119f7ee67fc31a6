"""Driving fhir-bridge against the fake EHR in-process: subscribe, forward, process."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import select

from fhir_bridge import jobs
from fhir_bridge.ingest.service import accept_notification
from fhir_bridge.runtime import Runtime
from fhir_bridge.sandbox.process import EhrServer
from fhir_bridge.sandbox.receiver import NotificationReceiver, ReceivedRequest
from fhir_bridge.settings import SUBSCRIBED_TYPES
from fhir_bridge.store.db import transaction
from fhir_bridge.store.models import ResourceState, Subscription
from fhir_bridge.sync import repository
from fhir_bridge.sync.subscriptions import ensure_subscriptions

WAIT_SECONDS = 10.0


def create_subscriptions(
    rt: Runtime, resource_types: tuple[str, ...] = SUBSCRIBED_TYPES
) -> list[Subscription]:
    """What ``fhir-bridge subscriptions create`` does."""
    return ensure_subscriptions(
        rt.sessions, rt.ehr, jobs.subscription_plan(rt), resource_types, rt.clock()
    )


def appointment_subscription(rt: Runtime) -> Subscription:
    with transaction(rt.sessions) as session:
        row = repository.find_subscription(session, "Appointment", rt.settings.subscription_kind)
        assert row is not None
        return row


def wait_until_active(ehr: EhrServer, remote_id: str) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        if ehr.read("Subscription", remote_id)["status"] == "active":
            return
        time.sleep(0.05)
    raise AssertionError(f"Subscription/{remote_id} never became active")


def notification_kind(request: ReceivedRequest) -> str:
    status = request.json()["entry"][0]["resource"]
    if status["resourceType"] == "SubscriptionStatus":
        return str(status["type"])
    return next(p["valueCode"] for p in status["parameter"] if p["name"] == "type")


def wait_for_kind(
    receiver: NotificationReceiver, kind: str, count: int = 1
) -> list[ReceivedRequest]:
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        matching = [r for r in receiver.requests if notification_kind(r) == kind]
        if len(matching) >= count:
            return matching
        time.sleep(0.05)
    raise AssertionError(f"fewer than {count} {kind} notifications arrived")


def forward(rt: Runtime, request: ReceivedRequest) -> str:
    """Hand a notification the EHR delivered to our ingest, then process it like the worker."""
    subscription_id = request.path.rstrip("/").split("/")[-1]
    accepted = accept_notification(
        rt.sessions,
        master_secret=rt.settings.require_notification_secret(),
        subscription_id=subscription_id,
        authorization=request.headers.get("Authorization"),
        signature=request.headers.get("X-Signature"),
        body=request.body,
        path_type=None,
        path_id=None,
        now=rt.clock(),
        enqueue=lambda _inbox_id: None,
    )
    assert accepted.inbox_id is not None
    return jobs.process_inbox(rt, accepted.inbox_id)


def stored(rt: Runtime, resource_type: str, resource_id: str) -> dict[str, Any] | None:
    with transaction(rt.sessions) as session:
        row = session.get(ResourceState, (resource_type, resource_id))
        return dict(row.body) if row is not None else None


def stored_ids(rt: Runtime, resource_type: str) -> set[str]:
    with transaction(rt.sessions) as session:
        return set(
            session.scalars(
                select(ResourceState.resource_id).where(
                    ResourceState.resource_type == resource_type
                )
            )
        )


def interactions(ehr: EhrServer) -> dict[str, int]:
    counts: dict[str, int] = ehr.stats()["requests_by_type_and_interaction"]
    return counts
