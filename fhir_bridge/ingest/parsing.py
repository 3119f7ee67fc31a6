"""Pure parsing of what an EHR POSTs to us, for every notification style we accept.

* Subscriptions Backport IG: a ``history`` Bundle whose first entry is the status
  (``Parameters`` in R4, ``SubscriptionStatus`` in R4B), of type handshake,
  heartbeat, event-notification (or query-status / query-event from ``$status`` /
  ``$events``), with ``empty``, ``id-only`` or ``full-resource`` content.
* Classic R4 rest-hook: an empty body, or the changed resource itself.

Errors name fields and codes only: the body may contain PHI.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from fhir_bridge.fhir.resources import (
    InvalidResource,
    relative_reference,
    validate_resource,
)

STATUS_TYPES = {"handshake", "heartbeat", "event-notification", "query-status", "query-event"}


class InvalidNotification(ValueError):
    """The notification is malformed; ``code`` is a FHIR issue-type code."""

    def __init__(self, detail: str, code: str = "invalid") -> None:
        super().__init__(detail)
        self.code = code


@dataclass(frozen=True)
class NotificationEvent:
    """One event inside a topic notification; ``resource`` is set for full-resource."""

    number: int | None
    focus: str | None
    resource: dict[str, Any] | None = None


@dataclass(frozen=True)
class ParsedNotification:
    """The parts of a notification the pipeline acts on."""

    kind: str
    subscription_ref: str | None = None
    status: str | None = None
    events_since_start: int | None = None
    events: tuple[NotificationEvent, ...] = field(default_factory=tuple)
    resource: dict[str, Any] | None = None

    def dedupe_key(self, subscription_id: str, body_digest: str) -> str:
        """A key equal for redeliveries of the same notification, distinct otherwise."""
        if self.kind in ("event-notification", "query-event"):
            numbers = [e.number for e in self.events if e.number is not None]
            if numbers:
                return f"{subscription_id}:event:{min(numbers)}-{max(numbers)}"
        if self.kind == "classic-resource" and self.resource is not None:
            meta = self.resource.get("meta") or {}
            version = meta.get("versionId") or meta.get("lastUpdated") or body_digest
            return (
                f"{subscription_id}:{self.resource['resourceType']}/{self.resource['id']}:{version}"
            )[:255]
        return f"{subscription_id}:{self.kind}:{body_digest}"


def body_digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()[:32]


def _int(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def _param_value(param: Mapping[str, Any]) -> Any:
    for key, value in param.items():
        if key.startswith("value"):
            return value
    return None


def _status_from_parameters(resource: Mapping[str, Any]) -> dict[str, Any]:
    status: dict[str, Any] = {"events": []}
    for param in resource.get("parameter") or []:
        name = param.get("name")
        if name == "notification-event":
            event: dict[str, Any] = {}
            for part in param.get("part") or []:
                event[part.get("name")] = _param_value(part)
            status["events"].append(
                {
                    "number": _int(event.get("event-number")),
                    "focus": (event.get("focus") or {}).get("reference"),
                }
            )
        elif name in ("subscription", "status", "type", "events-since-subscription-start"):
            status[name] = _param_value(param)
    return status


def _status_from_subscription_status(resource: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "subscription": resource.get("subscription"),
        "status": resource.get("status"),
        "type": resource.get("type"),
        "events-since-subscription-start": resource.get("eventsSinceSubscriptionStart"),
        "events": [
            {
                "number": _int(event.get("eventNumber")),
                "focus": (event.get("focus") or {}).get("reference"),
            }
            for event in resource.get("notificationEvent") or []
        ],
    }


def parse_topic_bundle(bundle: Mapping[str, Any]) -> ParsedNotification:
    """Parse a Backport IG notification Bundle (R4 Parameters or R4B SubscriptionStatus)."""
    if bundle.get("type") != "history":
        raise InvalidNotification("notification Bundle.type must be 'history'")
    entries = bundle.get("entry")
    if not isinstance(entries, list) or not entries:
        raise InvalidNotification("notification Bundle has no entries")
    first = (entries[0] or {}).get("resource") or {}
    if first.get("resourceType") == "Parameters":
        status = _status_from_parameters(first)
    elif first.get("resourceType") == "SubscriptionStatus":
        status = _status_from_subscription_status(first)
    else:
        raise InvalidNotification("first entry must be Parameters (R4) or SubscriptionStatus (R4B)")
    kind = status.get("type")
    if kind not in STATUS_TYPES:
        raise InvalidNotification("unknown notification type", code="code-invalid")
    resources: dict[str, dict[str, Any]] = {}
    for entry in entries[1:]:
        resource = (entry or {}).get("resource")
        if resource is None:
            continue
        try:
            validate_resource(resource)
        except InvalidResource as exc:
            raise InvalidNotification(str(exc), code="structure") from None
        resources[f"{resource['resourceType']}/{resource['id']}"] = resource
    events = []
    for event in status["events"]:
        focus = relative_reference(event["focus"])
        events.append(
            NotificationEvent(
                number=event["number"], focus=focus, resource=resources.get(focus or "")
            )
        )
    subscription_ref = relative_reference(
        (status.get("subscription") or {}).get("reference")
        if isinstance(status.get("subscription"), dict)
        else None
    )
    return ParsedNotification(
        kind=str(kind),
        subscription_ref=subscription_ref,
        status=status.get("status"),
        events_since_start=_int(status.get("events-since-subscription-start")),
        events=tuple(events),
    )


def parse_notification(
    payload: Any, *, path_type: str | None = None, path_id: str | None = None
) -> ParsedNotification:
    """Classify a decoded JSON body (``None`` for an empty body) into a notification."""
    if payload is None:
        if path_type:
            raise InvalidNotification("a resource body is required on this URL", code="required")
        return ParsedNotification(kind="classic-empty")
    if not isinstance(payload, dict) or not isinstance(payload.get("resourceType"), str):
        raise InvalidNotification("body must be a FHIR resource with a resourceType")
    if payload["resourceType"] == "Bundle" and path_type is None:
        return parse_topic_bundle(payload)
    try:
        resource = validate_resource(payload, expected_type=path_type)
    except InvalidResource as exc:
        raise InvalidNotification(str(exc), code="structure") from None
    if path_id is not None and resource.get("id") != path_id:
        raise InvalidNotification("resource id does not match the URL")
    return ParsedNotification(kind="classic-resource", resource=resource)
