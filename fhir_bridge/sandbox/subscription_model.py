"""Reading a Subscription resource: classic R4 criteria or R5-Backport topic subscriptions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fhir_bridge.sandbox.outcomes import InvalidRequestError
from fhir_bridge.sandbox.search import SearchParams, parse_criteria

BACKPORT = "http://hl7.org/fhir/uv/subscriptions-backport"
FILTER_CRITERIA_URL = f"{BACKPORT}/StructureDefinition/backport-filter-criteria"
PAYLOAD_CONTENT_URL = f"{BACKPORT}/StructureDefinition/backport-payload-content"
HEARTBEAT_PERIOD_URL = f"{BACKPORT}/StructureDefinition/backport-heartbeat-period"
MEDPLUM_SECRET_URL = "https://medplum.com/fhir/StructureDefinition/subscription-secret"  # noqa: S105
TOPIC_BASE = "http://fhir-bridge.test/SubscriptionTopic"
TOPICS: dict[str, str] = {
    f"{TOPIC_BASE}/appointment-change": "Appointment",
    f"{TOPIC_BASE}/medicationrequest-change": "MedicationRequest",
    f"{TOPIC_BASE}/encounter-change": "Encounter",
}
PAYLOAD_CONTENTS = ("empty", "id-only", "full-resource")
FHIR_JSON = "application/fhir+json"


@dataclass
class SubscriptionSpec:
    """Everything delivery needs to know about one Subscription, parsed once."""

    id: str
    focus_type: str
    filters: SearchParams
    endpoint: str
    headers: dict[str, str]
    style: str  # "backport" | "classic-empty" | "hapi" | "medplum"
    topic: str | None = None
    content: str = "empty"
    heartbeat_seconds: int | None = None
    secret: str | None = None

    @property
    def topic_based(self) -> bool:
        """Whether this follows the R5 Backport IG (handshake, notification bundles)."""
        return self.style == "backport"


def _extension_value(element: dict[str, Any] | None, url: str) -> Any:
    for extension in (element or {}).get("extension") or []:
        if extension.get("url") == url:
            for key, value in extension.items():
                if key.startswith("value"):
                    return value
    return None


def _parse_headers(lines: list[Any]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for line in lines:
        name, separator, value = str(line).partition(":")
        if not separator or not name.strip():
            raise InvalidRequestError("Subscription.channel.header entries must be 'Name: value'")
        headers[name.strip()] = value.strip()
    return headers


def parse_subscription(resource: dict[str, Any]) -> SubscriptionSpec:
    """Validate a Subscription the way a backport-capable server would; 400 if unusable."""
    channel = resource.get("channel") or {}
    if channel.get("type") != "rest-hook":
        raise InvalidRequestError("Only rest-hook Subscription channels are supported")
    endpoint = channel.get("endpoint") or ""
    if not endpoint.startswith(("http://", "https://")):
        raise InvalidRequestError("Subscription.channel.endpoint must be an http(s) URL")
    criteria = resource.get("criteria") or ""
    if not criteria:
        raise InvalidRequestError("Subscription.criteria is required")
    headers = _parse_headers(channel.get("header") or [])
    if criteria in TOPICS:
        return _topic_spec(resource, channel, criteria, endpoint, headers)
    if criteria.startswith(("http://", "https://")):
        raise InvalidRequestError("Subscription topic is not supported by this server")
    focus_type, filters = parse_criteria(criteria)
    secret = _extension_value(resource, MEDPLUM_SECRET_URL)
    if secret:
        style = "medplum"
    elif channel.get("payload"):
        style = "hapi"
    else:
        style = "classic-empty"
    return SubscriptionSpec(
        id=str(resource.get("id") or ""),
        focus_type=focus_type,
        filters=filters,
        endpoint=endpoint,
        headers=headers,
        style=style,
        secret=str(secret) if secret else None,
    )


def _topic_spec(
    resource: dict[str, Any],
    channel: dict[str, Any],
    topic: str,
    endpoint: str,
    headers: dict[str, str],
) -> SubscriptionSpec:
    focus_type = TOPICS[topic]
    filters: SearchParams = []
    filter_criteria = _extension_value(resource.get("_criteria"), FILTER_CRITERIA_URL)
    if filter_criteria:
        filter_type, filters = parse_criteria(str(filter_criteria))
        if filter_type != focus_type:
            raise InvalidRequestError("Filter criteria resource type does not match the topic")
    content = _extension_value(channel.get("_payload"), PAYLOAD_CONTENT_URL) or "empty"
    if content not in PAYLOAD_CONTENTS:
        raise InvalidRequestError("Unsupported backport-payload-content code")
    heartbeat = _extension_value(channel, HEARTBEAT_PERIOD_URL)
    if heartbeat is not None and (not isinstance(heartbeat, int) or heartbeat < 1):
        raise InvalidRequestError("backport-heartbeat-period must be a positive integer")
    return SubscriptionSpec(
        id=str(resource.get("id") or ""),
        focus_type=focus_type,
        filters=filters,
        endpoint=endpoint,
        headers=headers,
        style="backport",
        topic=topic,
        content=str(content),
        heartbeat_seconds=heartbeat,
    )
