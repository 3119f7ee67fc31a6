"""Backport IG notification bundles: R4 `Parameters` status or R4B `SubscriptionStatus`."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from fhir_bridge.sandbox.subscription_model import BACKPORT, SubscriptionSpec

STATUS_PROFILE_R4 = f"{BACKPORT}/StructureDefinition/backport-subscription-status-r4"
NOTIFICATION_PROFILE_R4 = f"{BACKPORT}/StructureDefinition/backport-subscription-notification-r4"


@dataclass(frozen=True)
class EventRecord:
    """One triggering event of a subscription, kept for `$events` and redelivery."""

    number: int
    timestamp: str
    method: str  # "POST" for a create, "PUT" for an update
    resource: dict[str, Any]

    @property
    def focus(self) -> str:
        """Relative `Type/id` of the resource that triggered the event."""
        return f"{self.resource['resourceType']}/{self.resource['id']}"


@dataclass(frozen=True)
class StatusSnapshot:
    """The subscription facts every status resource repeats."""

    spec: SubscriptionSpec
    status: str
    events_since_start: int
    base_url: str
    fhir_version: str


def status_resource(
    snapshot: StatusSnapshot, type_: str, events: list[EventRecord], content: str
) -> dict[str, Any]:
    """The first entry of a notification bundle, in the server's FHIR version style."""
    if snapshot.fhir_version == "R4B":
        return _subscription_status(snapshot, type_, events, content)
    return _parameters_status(snapshot, type_, events, content)


def notification_bundle(
    snapshot: StatusSnapshot, type_: str, events: list[EventRecord], content: str
) -> dict[str, Any]:
    """A `history` Bundle: status first, then one entry per event unless content is empty."""
    spec = snapshot.spec
    status_entry = {
        "fullUrl": f"urn:uuid:{uuid.uuid4()}",
        "resource": status_resource(snapshot, type_, events, content),
        "request": {"method": "GET", "url": f"{snapshot.base_url}/Subscription/{spec.id}/$status"},
        "response": {"status": "200"},
    }
    bundle: dict[str, Any] = {"resourceType": "Bundle", "id": str(uuid.uuid4())}
    if snapshot.fhir_version == "R4":
        bundle["meta"] = {"profile": [NOTIFICATION_PROFILE_R4]}
    bundle["type"] = "history"
    if events:
        bundle["timestamp"] = events[-1].timestamp
    bundle["entry"] = [status_entry]
    if content != "empty":
        bundle["entry"] += [_event_entry(snapshot.base_url, event, content) for event in events]
    return bundle


def status_searchset(snapshot: StatusSnapshot) -> dict[str, Any]:
    """`$status` answer: a searchset Bundle holding one query-status resource."""
    return {
        "resourceType": "Bundle",
        "id": str(uuid.uuid4()),
        "type": "searchset",
        "total": 1,
        "entry": [
            {
                "fullUrl": f"urn:uuid:{uuid.uuid4()}",
                "resource": status_resource(snapshot, "query-status", [], "empty"),
                "search": {"mode": "match"},
            }
        ],
    }


def _event_entry(base_url: str, event: EventRecord, content: str) -> dict[str, Any]:
    entry: dict[str, Any] = {"fullUrl": f"{base_url}/{event.focus}"}
    if content == "full-resource":
        entry["resource"] = event.resource
    url = event.resource["resourceType"] if event.method == "POST" else event.focus
    entry["request"] = {"method": event.method, "url": url}
    entry["response"] = {"status": "201" if event.method == "POST" else "200"}
    return entry


def _parameters_status(
    snapshot: StatusSnapshot, type_: str, events: list[EventRecord], content: str
) -> dict[str, Any]:
    spec = snapshot.spec
    parameters: list[dict[str, Any]] = [
        {
            "name": "subscription",
            "valueReference": {"reference": f"{snapshot.base_url}/Subscription/{spec.id}"},
        },
        *([{"name": "topic", "valueCanonical": spec.topic}] if spec.topic else []),
        {"name": "status", "valueCode": snapshot.status},
        {"name": "type", "valueCode": type_},
        {
            "name": "events-since-subscription-start",
            "valueString": str(snapshot.events_since_start),
        },
    ]
    for event in events:
        parts: list[dict[str, Any]] = [
            {"name": "event-number", "valueString": str(event.number)},
            {"name": "timestamp", "valueInstant": event.timestamp},
        ]
        if content != "empty":
            parts.append(
                {"name": "focus", "valueReference": {"reference": _focus_url(snapshot, event)}}
            )
        parameters.append({"name": "notification-event", "part": parts})
    return {
        "resourceType": "Parameters",
        "id": str(uuid.uuid4()),
        "meta": {"profile": [STATUS_PROFILE_R4]},
        "parameter": parameters,
    }


def _subscription_status(
    snapshot: StatusSnapshot, type_: str, events: list[EventRecord], content: str
) -> dict[str, Any]:
    spec = snapshot.spec
    status: dict[str, Any] = {
        "resourceType": "SubscriptionStatus",
        "id": str(uuid.uuid4()),
        "status": snapshot.status,
        "type": type_,
        "eventsSinceSubscriptionStart": str(snapshot.events_since_start),
    }
    notification_events = []
    for event in events:
        notification_event: dict[str, Any] = {
            "eventNumber": str(event.number),
            "timestamp": event.timestamp,
        }
        if content != "empty":
            notification_event["focus"] = {"reference": _focus_url(snapshot, event)}
        notification_events.append(notification_event)
    if notification_events:
        status["notificationEvent"] = notification_events
    status["subscription"] = {"reference": f"{snapshot.base_url}/Subscription/{spec.id}"}
    if spec.topic:
        status["topic"] = spec.topic
    return status


def _focus_url(snapshot: StatusSnapshot, event: EventRecord) -> str:
    return f"{snapshot.base_url}/{event.focus}"
