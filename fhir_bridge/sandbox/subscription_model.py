"""Reading a Subscription resource: classic R4 criteria or R5-Backport topic subscriptions."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
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
ALL_INTERACTIONS = frozenset({"create", "update", "delete"})
# Topics as resources (Backport IG): R4 `Basic` with this code and R5 cross-version
# extensions; R4B has `SubscriptionTopic` itself.
FHIR_TYPES_SYSTEM = "http://hl7.org/fhir/fhir-types"
R5_TOPIC = "http://hl7.org/fhir/5.0/StructureDefinition/extension-SubscriptionTopic"
TOPIC_RESOURCE_TYPES = ("Basic", "SubscriptionTopic")


@dataclass(frozen=True)
class TopicRule:
    """What one topic fires on: a resource type and the interactions that trigger it."""

    focus_type: str
    interactions: frozenset[str] = ALL_INTERACTIONS


def builtin_topic_resource(url: str, focus_type: str, fhir_version: str) -> dict[str, Any]:
    """One of the server's own topics as a resource clients can discover."""
    description = f"Any create, update or delete of a {focus_type}"
    resource = f"http://hl7.org/fhir/StructureDefinition/{focus_type}"
    if fhir_version == "R4B":
        return {
            "resourceType": "SubscriptionTopic",
            "url": url,
            "status": "active",
            "description": description,
            "resourceTrigger": [
                {"resource": resource, "supportedInteraction": ["create", "update", "delete"]}
            ],
        }
    return {
        "resourceType": "Basic",
        "code": {"coding": [{"system": FHIR_TYPES_SYSTEM, "code": "SubscriptionTopic"}]},
        "extension": [
            {"url": f"{R5_TOPIC}.url", "valueUri": url},
            {"url": f"{R5_TOPIC}.status", "valueCode": "active"},
            {"url": f"{R5_TOPIC}.description", "valueMarkdown": description},
            {
                "url": f"{R5_TOPIC}.resourceTrigger",
                "extension": [
                    {"url": "resource", "valueUri": resource},
                    *(
                        {"url": "supportedInteraction", "valueCode": code}
                        for code in ("create", "update", "delete")
                    ),
                ],
            },
        ],
    }


def topic_rules(resources: Iterable[dict[str, Any]]) -> dict[str, TopicRule]:
    """Topic URL -> rule, from stored SubscriptionTopic and Basic-encoded topic resources."""
    rules: dict[str, TopicRule] = {}
    for resource in resources:
        if resource.get("resourceType") == "SubscriptionTopic":
            url = resource.get("url")
            triggers = [
                (t.get("resource"), t.get("supportedInteraction") or [])
                for t in resource.get("resourceTrigger") or []
            ]
        else:
            codes = (resource.get("code") or {}).get("coding") or []
            if not any(c.get("code") == "SubscriptionTopic" for c in codes):
                continue
            extensions = resource.get("extension") or []
            url = _extension_value({"extension": extensions}, f"{R5_TOPIC}.url")
            triggers = []
            for extension in extensions:
                if extension.get("url") == f"{R5_TOPIC}.resourceTrigger":
                    parts = extension.get("extension") or []
                    triggers.append(
                        (
                            _extension_value({"extension": parts}, "resource"),
                            [
                                p.get("valueCode")
                                for p in parts
                                if p.get("url") == "supportedInteraction"
                            ],
                        )
                    )
        if not isinstance(url, str) or not triggers:
            continue
        focus, interactions = triggers[0]
        rules[url] = TopicRule(
            str(focus or "").rsplit("/", 1)[-1],
            frozenset(interactions) & ALL_INTERACTIONS if interactions else ALL_INTERACTIONS,
        )
    return rules


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
    interactions: frozenset[str] = field(default=ALL_INTERACTIONS)

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


def parse_subscription(
    resource: dict[str, Any], topics: Mapping[str, TopicRule] | None = None
) -> SubscriptionSpec:
    """Validate a Subscription the way a backport-capable server would; 400 if unusable.

    ``topics``: the topics this server knows (default: its built-in ones)."""
    known = {url: TopicRule(focus) for url, focus in TOPICS.items()} if topics is None else topics
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
    if criteria in known:
        return _topic_spec(resource, channel, known[criteria], criteria, endpoint, headers)
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
    rule: TopicRule,
    topic: str,
    endpoint: str,
    headers: dict[str, str],
) -> SubscriptionSpec:
    focus_type = rule.focus_type
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
        interactions=rule.interactions,
    )
