"""Which SubscriptionTopic each resource type subscribes to: found on the EHR, checked, chosen.

An EHR publishes its topics as ``SubscriptionTopic`` resources (R4B/R5), as ``Basic``
resources carrying the Backport IG's topic extensions (R4), or only as canonical URLs in its
CapabilityStatement. A topic fits a resource type when it fires on **create and update** of
that type without narrowing criteria: a topic such as "appointment-booked" would never tell
us of a cancellation or a reschedule, so a reminder would go out for a visit that no longer
exists. Delete is preferred but not required (a deleted resource is also caught when a
later search no longer returns it).

``choose_topics`` is pure: ``subscriptions create`` and ``doctor`` both call it on what
``discover_topics`` read, so they never disagree. ``topic_resource`` builds the topic we
install ourselves (``fhir-bridge subscriptions topics install``) where the EHR allows it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from fhir_bridge.fhir.client import EhrClient
from fhir_bridge.fhir.errors import EhrError, EhrUnavailable
from fhir_bridge.settings import ENV_PREFIX, SUBSCRIBED_TYPES, Settings

BACKPORT_IG = "http://hl7.org/fhir/uv/subscriptions-backport"
TOPIC_CANONICAL_EXTENSION = (
    f"{BACKPORT_IG}/StructureDefinition/capabilitystatement-subscriptiontopic-canonical"
)
# The R4 encoding of a SubscriptionTopic (Backport IG): a Basic resource with this code ...
FHIR_TYPES_SYSTEM = "http://hl7.org/fhir/fhir-types"
BASIC_TOPIC_CODE = f"{FHIR_TYPES_SYSTEM}|SubscriptionTopic"
# ... and the R5 elements as cross-version extensions.
R5_TOPIC = "http://hl7.org/fhir/5.0/StructureDefinition/extension-SubscriptionTopic"
STRUCTURE_DEFINITION = "http://hl7.org/fhir/StructureDefinition/"
INTERACTIONS = frozenset({"create", "update", "delete"})
REQUIRED = frozenset({"create", "update"})


@dataclass(frozen=True)
class Trigger:
    """One ``resourceTrigger``: which type, on which interactions, narrowed or not."""

    resource_type: str
    interactions: frozenset[str]
    narrowed_by: str | None = None  # query or FHIRPath criteria that filter what fires


@dataclass(frozen=True)
class Topic:
    """A topic the EHR offers. ``triggers`` is None when only its URL is published."""

    url: str
    source: str  # "SubscriptionTopic" | "Basic" | "CapabilityStatement" | "setting"
    triggers: tuple[Trigger, ...] | None = None
    status: str | None = None

    def fires_on(self, resource_type: str) -> frozenset[str]:
        """Interactions of the type that always fire (narrowed triggers count for nothing)."""
        return frozenset(
            interaction
            for trigger in self.triggers or ()
            if trigger.resource_type == resource_type and trigger.narrowed_by is None
            for interaction in trigger.interactions
        )

    def about(self, resource_type: str) -> bool:
        return any(t.resource_type == resource_type for t in self.triggers or ())


@dataclass(frozen=True)
class TopicChoice:
    """The topic one resource type will use, or why none can be used (one line)."""

    resource_type: str
    url: str | None
    refusal: str | None = None
    note: str | None = None


@dataclass(frozen=True)
class Discovery:
    """Everything the EHR told us about its topics."""

    topics: tuple[Topic, ...]
    listed: bool  # the EHR answered a topic search or published canonicals

    def find(self, url: str) -> Topic | None:
        found = [topic for topic in self.topics if topic.url == url]
        # A definition (with triggers) says more than a bare canonical.
        found.sort(key=lambda topic: topic.triggers is None)
        return found[0] if found else None


def default_topic_url(topic_base: str, resource_type: str) -> str:
    """Our own topic naming: ``{base}/appointment-change``."""
    return f"{topic_base.rstrip('/')}/{resource_type.lower()}-change"


def named_topics(settings: Settings) -> dict[str, str]:
    """Topics the operator named: ``FHIR_BRIDGE_SUBSCRIPTION_TOPICS``, and for the other
    types ``{topic base}/{type}-change`` when ``FHIR_BRIDGE_SUBSCRIPTION_TOPIC_BASE`` was set.
    A named topic is used only if it fits; unnamed types take whichever EHR topic fits."""
    named = dict(settings.subscription_topics)
    if "subscription_topic_base" in settings.model_fields_set:
        for resource_type in SUBSCRIBED_TYPES:
            named.setdefault(
                resource_type, default_topic_url(settings.subscription_topic_base, resource_type)
            )
    return named


def misfit(topic: Topic, resource_type: str) -> str | None:
    """Why ``topic`` cannot carry ``resource_type`` (None when it can)."""
    if topic.triggers is None:
        return None
    if topic.status not in (None, "active"):
        return f"is {topic.status} on the EHR"
    if not topic.about(resource_type):
        others = sorted({t.resource_type for t in topic.triggers}) or ["no resource type"]
        return f"is about {', '.join(others)}, not {resource_type}"
    fires = topic.fires_on(resource_type)
    missing = REQUIRED - fires
    if not missing:
        return None
    narrowed = [
        t.narrowed_by for t in topic.triggers if t.resource_type == resource_type and t.narrowed_by
    ]
    if narrowed and not fires:
        return (
            f"fires only for {resource_type}s matching {narrowed[0]}, so a cancellation or "
            "reschedule would never reach fhir-bridge"
        )
    said = " and ".join(sorted(fires)) if fires else "nothing"
    return (
        f"fires on {said} only (not {' or '.join(sorted(missing))}), so a cancellation or "
        "reschedule would never reach fhir-bridge"
    )


def choose_topics(
    discovery: Discovery,
    resource_types: Iterable[str],
    *,
    configured: Mapping[str, str],
    default_url: Callable[[str], str],
) -> list[TopicChoice]:
    """Per type: the configured topic if it fits, else our default, else any fitting one."""
    return [_choose(discovery, rt, configured.get(rt), default_url(rt)) for rt in resource_types]


def _choose(
    discovery: Discovery, resource_type: str, configured: str | None, default: str
) -> TopicChoice:
    fix = (
        f"set {ENV_PREFIX}SUBSCRIPTION_TOPICS to a topic that fires on create and update, or "
        "install fhir-bridge's own with `fhir-bridge subscriptions topics install` "
        "(or create these SubscriptionTopics on the EHR; README recipes)"
    )
    if configured is not None:
        topic = discovery.find(configured)
        if topic is None:
            if not discovery.listed:
                # The EHR lists no topics at all: take the operator's word for it.
                return TopicChoice(resource_type, configured, note="the EHR lists no topics")
            return TopicChoice(
                resource_type,
                None,
                f"{resource_type}: topic {configured} is not on the EHR; {fix}, or set "
                f"{ENV_PREFIX}SUBSCRIPTION_TOPIC_BASE to where the EHR's topics live",
            )
        why = misfit(topic, resource_type)
        if why:
            return TopicChoice(
                resource_type, None, f"{resource_type}: topic {configured} {why}; {fix}"
            )
        return TopicChoice(resource_type, configured, note=_note(topic))
    topic = discovery.find(default)
    if topic is not None and misfit(topic, resource_type) is None:
        return TopicChoice(resource_type, default, note=_note(topic))
    fitting = [
        candidate
        for candidate in discovery.topics
        if candidate.triggers is not None
        and candidate.about(resource_type)
        and misfit(candidate, resource_type) is None
    ]
    # Prefer a topic that also fires on delete, then the plainest (shortest) URL.
    fitting.sort(key=lambda t: ("delete" not in t.fires_on(resource_type), len(t.url), t.url))
    if fitting:
        return TopicChoice(resource_type, fitting[0].url, note="discovered on the EHR")
    reasons = [
        f"{candidate.url} {misfit(candidate, resource_type)}"
        for candidate in discovery.topics
        if candidate.triggers is not None and candidate.about(resource_type)
    ]
    if topic is not None and topic.url not in {r.split(" ", 1)[0] for r in reasons}:
        reasons.append(f"{topic.url} {misfit(topic, resource_type)}")
    if not discovery.listed and topic is None:
        return TopicChoice(resource_type, default, note="the EHR lists no topics")
    if reasons:
        return TopicChoice(
            resource_type,
            None,
            f"{resource_type}: no topic on the EHR fires on create and update "
            f"({'; '.join(reasons)}); {fix}",
        )
    return TopicChoice(
        resource_type,
        None,
        f"{resource_type}: the EHR offers no topic for {resource_type} "
        f"(looked for {default}); {fix}",
    )


def _note(topic: Topic) -> str | None:
    if topic.triggers is None:
        return "listed in the CapabilityStatement (triggers not published)"
    return None


# --------------------------------------------------------------------------- discovery


def discover_topics(ehr: EhrClient, capability: Mapping[str, Any] | None = None) -> Discovery:
    """Read the EHR's topics: SubscriptionTopic, Basic-encoded, and CapabilityStatement URLs.

    A search the EHR does not support (R4 has no SubscriptionTopic type) counts as "none
    there"; an unreachable EHR raises :class:`EhrUnavailable`.
    """
    topics: list[Topic] = []
    listed = False
    for resource_type, params, parse in (
        ("SubscriptionTopic", {"_count": "100"}, parse_subscription_topic),
        ("Basic", {"code": BASIC_TOPIC_CODE, "_count": "100"}, parse_basic_topic),
    ):
        try:
            found = list(ehr.search_all(resource_type, params))
        except EhrUnavailable:
            raise
        except EhrError:
            continue
        listed = listed or bool(found)
        topics.extend(topic for topic in map(parse, found) if topic is not None)
    canonicals = advertised_topics(capability or {})
    listed = listed or bool(canonicals)
    topics.extend(Topic(url, "CapabilityStatement") for url in sorted(canonicals))
    return Discovery(tuple(topics), listed)


def advertised_topics(capability: Mapping[str, Any]) -> set[str]:
    """Topic canonicals a Backport IG server lists on its Subscription resource entry."""
    found: set[str] = set()
    for rest in _list(capability.get("rest")):
        for resource in _list(rest.get("resource")):
            if resource.get("type") != "Subscription":
                continue
            for extension in _list(resource.get("extension")):
                if extension.get("url") == TOPIC_CANONICAL_EXTENSION:
                    value = extension.get("valueCanonical") or extension.get("valueUri")
                    if isinstance(value, str) and value:
                        found.add(value)
    return found


def parse_subscription_topic(resource: Mapping[str, Any]) -> Topic | None:
    """An R4B/R5 ``SubscriptionTopic``."""
    url = resource.get("url")
    if resource.get("resourceType") != "SubscriptionTopic" or not isinstance(url, str):
        return None
    triggers = []
    for trigger in _list(resource.get("resourceTrigger")):
        raw_query = trigger.get("queryCriteria")
        query: dict[str, Any] = raw_query if isinstance(raw_query, dict) else {}
        narrowed = _narrowing(
            query.get("current"), query.get("previous"), trigger.get("fhirPathCriteria")
        )
        interactions = _list_of_str(trigger.get("supportedInteraction"))
        triggers.append(_trigger(trigger.get("resource"), interactions, narrowed))
    status = resource.get("status")
    return Topic(url, "SubscriptionTopic", tuple(triggers), str(status) if status else None)


def parse_basic_topic(resource: Mapping[str, Any]) -> Topic | None:
    """An R4 ``Basic`` carrying the Backport IG's SubscriptionTopic extensions."""
    codings = _list((resource.get("code") or {}).get("coding"))
    if not any(
        c.get("system") == FHIR_TYPES_SYSTEM and c.get("code") == "SubscriptionTopic"
        for c in codings
    ):
        return None
    extensions = _list(resource.get("extension"))
    url = _value(extensions, f"{R5_TOPIC}.url")
    if not isinstance(url, str):
        return None
    triggers = []
    for extension in extensions:
        if extension.get("url") != f"{R5_TOPIC}.resourceTrigger":
            continue
        parts = _list(extension.get("extension"))
        query = next((p for p in parts if p.get("url") == "queryCriteria"), {})
        query_parts = _list(query.get("extension"))
        narrowed = _narrowing(
            _value(query_parts, "current"),
            _value(query_parts, "previous"),
            _value(parts, "fhirPathCriteria"),
        )
        interactions = [
            str(p.get("valueCode")) for p in parts if p.get("url") == "supportedInteraction"
        ]
        triggers.append(_trigger(_value(parts, "resource"), interactions, narrowed))
    status = _value(extensions, f"{R5_TOPIC}.status")
    return Topic(url, "Basic", tuple(triggers), str(status) if status else None)


def _trigger(resource: Any, interactions: list[str], narrowed: str | None) -> Trigger:
    name = str(resource or "").removeprefix(STRUCTURE_DEFINITION)
    # No supportedInteraction means every interaction (R5 SubscriptionTopic).
    fires = frozenset(interactions) & INTERACTIONS if interactions else INTERACTIONS
    return Trigger(name, fires, narrowed)


def _narrowing(current: Any, previous: Any, fhirpath: Any) -> str | None:
    for value in (current, previous, fhirpath):
        if isinstance(value, str) and value.strip():
            return value.strip()[:80]
    return None


def _value(extensions: Iterable[Mapping[str, Any]], url: str) -> Any:
    for extension in extensions:
        if extension.get("url") == url:
            for key, value in extension.items():
                if key.startswith("value"):
                    return value
    return None


def _list(value: Any) -> list[dict[str, Any]]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _list_of_str(value: Any) -> list[str]:
    return [str(item) for item in value if isinstance(item, str)] if isinstance(value, list) else []


# --------------------------------------------------------------------------- installing


def topic_resource(url: str, resource_type: str, fhir_version: str) -> dict[str, Any]:
    """fhir-bridge's own topic for a type (create, update and delete; no narrowing)."""
    name = f"fhir-bridge {resource_type} changes"
    description = f"Every create, update or delete of a {resource_type}"
    if fhir_version.startswith("4.3") or fhir_version.startswith("5"):
        return {
            "resourceType": "SubscriptionTopic",
            "url": url,
            "title": name,
            "status": "active",
            "description": description,
            "resourceTrigger": [
                {
                    "description": description,
                    "resource": f"{STRUCTURE_DEFINITION}{resource_type}",
                    "supportedInteraction": ["create", "update", "delete"],
                }
            ],
        }
    return {
        "resourceType": "Basic",
        "code": {"coding": [{"system": FHIR_TYPES_SYSTEM, "code": "SubscriptionTopic"}]},
        "extension": [
            {"url": f"{R5_TOPIC}.url", "valueUri": url},
            {"url": f"{R5_TOPIC}.title", "valueString": name},
            {"url": f"{R5_TOPIC}.status", "valueCode": "active"},
            {"url": f"{R5_TOPIC}.description", "valueMarkdown": description},
            {
                "url": f"{R5_TOPIC}.resourceTrigger",
                "extension": [
                    {"url": "description", "valueMarkdown": description},
                    {"url": "resource", "valueUri": f"{STRUCTURE_DEFINITION}{resource_type}"},
                    {"url": "supportedInteraction", "valueCode": "create"},
                    {"url": "supportedInteraction", "valueCode": "update"},
                    {"url": "supportedInteraction", "valueCode": "delete"},
                ],
            },
        ],
    }


def read_capabilities(ehr: EhrClient) -> dict[str, Any] | None:
    """The EHR's CapabilityStatement; None when it answers an error (not when unreachable)."""
    try:
        return ehr.capabilities()
    except EhrUnavailable:
        raise
    except EhrError:
        return None


def install_topics(ehr: EhrClient, settings: Settings) -> list[tuple[str, str, str]]:
    """Create our topic for each type where the EHR lacks it: (type, url, what happened).

    What happened is ``installed``, ``already on the EHR``, or starts with ``refused``.
    """
    capability = read_capabilities(ehr)
    version = str((capability or {}).get("fhirVersion") or "4.0.1")
    discovery = discover_topics(ehr, capability)
    named = named_topics(settings)
    outcomes = []
    for resource_type in SUBSCRIBED_TYPES:
        url = named.get(resource_type) or default_topic_url(
            settings.subscription_topic_base, resource_type
        )
        existing = discovery.find(url)
        if existing is not None and existing.triggers is not None:
            why = misfit(existing, resource_type)
            outcome = "already on the EHR" if why is None else f"refused: on the EHR but {why}"
            outcomes.append((resource_type, url, outcome))
            continue
        resource = topic_resource(url, resource_type, version)
        try:
            ehr.create(resource)
        except EhrUnavailable:
            raise
        except EhrError as exc:
            outcomes.append(
                (
                    resource_type,
                    url,
                    f"refused: the EHR does not let us create {resource['resourceType']} "
                    f"resources (HTTP {exc.status}); ask the EHR's administrators to add the "
                    f"topic, or set {ENV_PREFIX}SUBSCRIPTION_TOPICS to one it has",
                )
            )
            continue
        outcomes.append((resource_type, url, "installed"))
    return outcomes
