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
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from fhir_bridge.fhir.resources import (
    SUPPORTED_TYPES,
    InvalidResource,
    patient_reference,
    relative_reference,
    validate_resource,
)

STATUS_TYPES = {"handshake", "heartbeat", "event-notification", "query-status", "query-event"}

# Bounds on what we accept, so nothing we store can overflow a column or the worker.
MAX_DEPTH = 48  # FHIR resources nest ~15 levels; Python recursion would fail near 1000
MAX_INTEGER = 2**63 - 1  # JSON numbers we keep; FHIR R4 integers are 32-bit anyway
MAX_EVENT_NUMBER = 2**31 - 1  # ``subscription.events_through`` is a 32-bit INTEGER
MAX_KEY_LENGTH = 255  # ``inbox_notification.dedupe_key``
MAX_CODE_LENGTH = 64
MAX_REFERENCE_LENGTH = 2048
_EVENT_NUMBER = re.compile(r"[0-9]{1,10}")
_RESOURCE_TYPE = re.compile(r"[A-Z][A-Za-z]{0,63}")
_FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")


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

    def event_range(self) -> tuple[int, int] | None:
        """The first and last event number this notification carries, when they are
        contiguous (a stored notification then vouches for every number between)."""
        numbers = {e.number for e in self.events if e.number is not None}
        if not numbers:
            return None
        first, last = min(numbers), max(numbers)
        return (first, last) if last - first + 1 == len(numbers) else None

    def dedupe_key(self, subscription_id: str, body_digest: str) -> str:
        """A key equal for redeliveries of the same notification, distinct otherwise.

        Never longer than the column: an over-long key keeps a readable prefix and ends
        with a digest of the whole key, so two distinct long keys stay distinct.
        """
        return bounded_key(self._key(subscription_id, body_digest))

    def _key(self, subscription_id: str, body_digest: str) -> str:
        if self.kind in ("event-notification", "query-event"):
            numbers = [e.number for e in self.events if e.number is not None]
            if numbers:
                return f"{subscription_id}:event:{min(numbers)}-{max(numbers)}"
        if self.kind == "classic-resource" and self.resource is not None:
            meta = self.resource.get("meta")
            meta = meta if isinstance(meta, dict) else {}
            version = meta.get("versionId") or meta.get("lastUpdated") or body_digest
            return (
                f"{subscription_id}:{self.resource['resourceType']}/{self.resource['id']}:{version}"
            )
        return f"{subscription_id}:{self.kind}:{body_digest}"


def bounded_key(key: str, limit: int = MAX_KEY_LENGTH) -> str:
    """``key`` itself if it fits in ``limit`` characters, else a prefix plus its SHA-256."""
    if len(key) <= limit:
        return key
    digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()
    return f"{key[: limit - len(digest) - 1]}#{digest}"


def body_digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()[:32]


def decode_body(body: bytes) -> Any:
    """Decode a notification body (``None`` when empty) within our bounds.

    orjson refuses nesting past 1024 levels without recursing, numbers that overflow a
    double, invalid UTF-8 and lone surrogates; :func:`check_bounds` then applies our
    tighter limits before anything recursive (validation, the JSON column) sees the value.
    """
    if not body.strip():
        return None
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        if "depth" in str(exc):
            raise InvalidNotification(
                f"body nests deeper than {MAX_DEPTH} levels", code="too-costly"
            ) from None
        raise InvalidNotification("body is not valid JSON", code="structure") from None
    if not _clearly_within_bounds(body):
        check_bounds(payload)
    return payload


# |n| > MAX_INTEGER needs 19 digits or more: with every digit made "0", a run of 19 zeros.
_DIGITS_AS_ZERO = bytes.maketrans(b"0123456789", b"0" * 10)
_LONG_DIGIT_RUN = b"0" * 19


def _clearly_within_bounds(body: bytes) -> bool:
    """True when the raw JSON cannot break a bound :func:`check_bounds` enforces, judged
    from its bytes in C (a few microseconds, where the walk over every value costs tens).

    No more brackets in all than ``MAX_DEPTH`` (nesting needs one per level), no ``\\u0000``
    (the only way valid JSON spells a NUL; orjson refuses a raw one) and no run of 19 digits
    (a smaller integer is within range). A bracket or digits inside a string only make this
    say False, and the full walk decides.
    """
    return (
        body.count(b"{") + body.count(b"[") <= MAX_DEPTH
        and b"\\u0000" not in body
        and _LONG_DIGIT_RUN not in body.translate(_DIGITS_AS_ZERO)
    )


def check_bounds(payload: Any) -> None:
    """Depth, integer range and NUL-free strings, checked without recursion."""
    stack: list[tuple[Any, int]] = [(payload, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict | list):
            if depth > MAX_DEPTH:
                raise InvalidNotification(
                    f"body nests deeper than {MAX_DEPTH} levels", code="too-costly"
                )
            if isinstance(value, dict):
                for key, item in value.items():
                    if "\x00" in key:
                        raise InvalidNotification("a member name contains a NUL character")
                    stack.append((item, depth + 1))
            else:
                stack.extend((item, depth + 1) for item in value)
        elif isinstance(value, str):
            if "\x00" in value:
                raise InvalidNotification("a string contains a NUL character", code="value")
        elif isinstance(value, int) and abs(value) > MAX_INTEGER:
            raise InvalidNotification("a number is out of range", code="value")


def _object(value: Any, where: str) -> Mapping[str, Any]:
    """A JSON object, or ``{}`` when absent; anything else is malformed."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidNotification(f"{where} must be a JSON object", code="structure")
    return value


def _array(value: Any, where: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidNotification(f"{where} must be a JSON array", code="structure")
    return value


def _string(value: Any, where: str, limit: int = MAX_CODE_LENGTH) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidNotification(f"{where} must be a string", code="structure")
    if len(value) > limit:
        raise InvalidNotification(f"{where} is too long", code="too-long")
    return value


def _event_number(value: Any, where: str) -> int | None:
    """A count or event number: a JSON integer or a string of ASCII digits, 32-bit."""
    if value is None:
        return None
    if isinstance(value, str) and _EVENT_NUMBER.fullmatch(value.strip()):
        number = int(value.strip())
    elif isinstance(value, int) and not isinstance(value, bool):
        number = value
    else:
        raise InvalidNotification(f"{where} must be a non-negative integer", code="value")
    if not 0 <= number <= MAX_EVENT_NUMBER:
        raise InvalidNotification(f"{where} is out of range", code="value")
    return number


def _reference(value: Any, where: str) -> str | None:
    """``Type/id`` from a Reference object, or ``None`` when it names nothing we can read."""
    raw = _string(
        _object(value, where).get("reference"), f"{where}.reference", MAX_REFERENCE_LENGTH
    )
    reference = relative_reference(raw)
    if reference is None:
        return None
    resource_type, _, resource_id = reference.partition("/")
    if not (_RESOURCE_TYPE.fullmatch(resource_type) and _FHIR_ID.fullmatch(resource_id)):
        raise InvalidNotification(f"{where}.reference is not a FHIR reference", code="value")
    return reference


def _param_value(param: Mapping[str, Any]) -> Any:
    for key, value in param.items():
        if key.startswith("value"):
            return value
    return None


def _status_from_parameters(resource: Mapping[str, Any]) -> dict[str, Any]:
    status: dict[str, Any] = {"events": []}
    for param in _array(resource.get("parameter"), "Parameters.parameter"):
        param = _object(param, "Parameters.parameter")
        name = _string(param.get("name"), "Parameters.parameter.name")
        if name == "notification-event":
            event: dict[str, Any] = {}
            for part in _array(param.get("part"), "Parameters.parameter.part"):
                part = _object(part, "Parameters.parameter.part")
                part_name = _string(part.get("name"), "Parameters.parameter.part.name")
                if part_name:
                    event[part_name] = _param_value(part)
            status["events"].append(
                {
                    "number": _event_number(event.get("event-number"), "event-number"),
                    "focus": _reference(event.get("focus"), "focus"),
                }
            )
        elif name in ("subscription", "status", "type", "events-since-subscription-start"):
            status[name] = _param_value(param)
    return status


def _status_from_subscription_status(resource: Mapping[str, Any]) -> dict[str, Any]:
    events = []
    for event in _array(resource.get("notificationEvent"), "notificationEvent"):
        event = _object(event, "notificationEvent")
        events.append(
            {
                "number": _event_number(event.get("eventNumber"), "eventNumber"),
                "focus": _reference(event.get("focus"), "notificationEvent.focus"),
            }
        )
    return {
        "subscription": resource.get("subscription"),
        "status": resource.get("status"),
        "type": resource.get("type"),
        "events-since-subscription-start": resource.get("eventsSinceSubscriptionStart"),
        "events": events,
    }


def _validated(
    resource: Any, expected_type: str | None = None, *, full: bool = True
) -> dict[str, Any]:
    """A resource whose id and patient reference fit the columns they go to.

    ``full``: valid R4 (``fhir.resources``). Otherwise only its structure (a supported
    ``resourceType`` and a string ``id``): what the API checks before answering; the worker
    parses again with ``full`` and rejects what fails.
    """
    try:
        valid = (
            validate_resource(resource, expected_type=expected_type)
            if full
            else check_resource_shape(resource, expected_type=expected_type)
        )
    except InvalidResource as exc:
        raise InvalidNotification(str(exc), code="structure") from None
    if not _FHIR_ID.fullmatch(valid["id"]):
        raise InvalidNotification(f"{valid['resourceType']}.id is not a FHIR id", code="value")
    try:
        patient = patient_reference(valid)
    except (AttributeError, TypeError):  # unvalidated structure: a participant not an object
        raise InvalidNotification(
            f"{valid['resourceType']} refers to its patient in an invalid shape", code="structure"
        ) from None
    if patient is not None and not _FHIR_ID.fullmatch(patient.removeprefix("Patient/")):
        raise InvalidNotification(
            f"{valid['resourceType']} refers to its patient with an invalid id", code="value"
        )
    return valid


def check_resource_shape(resource: Any, expected_type: str | None = None) -> dict[str, Any]:
    """The structural part of ``validate_resource``: an object of a supported type with an id."""
    if not isinstance(resource, dict):
        raise InvalidResource("resource must be a JSON object")
    resource_type = resource.get("resourceType")
    if not isinstance(resource_type, str):
        raise InvalidResource("resourceType is missing")
    if expected_type and resource_type != expected_type:
        raise InvalidResource(f"expected {expected_type}, got {resource_type}")
    if resource_type not in SUPPORTED_TYPES:
        raise InvalidResource("unsupported resourceType")
    if not isinstance(resource.get("id"), str):
        raise InvalidResource(f"{resource_type} has no id")
    return resource


def parse_topic_bundle(bundle: Mapping[str, Any], *, full: bool = True) -> ParsedNotification:
    """Parse a Backport IG notification Bundle (R4 Parameters or R4B SubscriptionStatus).

    Every level is type-checked (an entry that is not an object, a ``parameter`` that is
    not an array, ...) and every number bounded, so malformed input is an
    :class:`InvalidNotification`, never another exception. ``full=False`` checks the
    resources it carries for structure only (the API); the worker parses with ``full``.
    """
    if bundle.get("type") != "history":
        raise InvalidNotification("notification Bundle.type must be 'history'")
    entries = bundle.get("entry")
    if not isinstance(entries, list) or not entries:
        raise InvalidNotification("notification Bundle has no entries")
    first = _object(_object(entries[0], "Bundle.entry").get("resource"), "Bundle.entry.resource")
    if first.get("resourceType") == "Parameters":
        status = _status_from_parameters(first)
    elif first.get("resourceType") == "SubscriptionStatus":
        status = _status_from_subscription_status(first)
    else:
        raise InvalidNotification("first entry must be Parameters (R4) or SubscriptionStatus (R4B)")
    kind = status.get("type")
    if not isinstance(kind, str) or kind not in STATUS_TYPES:
        raise InvalidNotification("unknown notification type", code="code-invalid")
    resources: dict[str, dict[str, Any]] = {}
    for entry in entries[1:]:
        resource = _object(entry, "Bundle.entry").get("resource")
        if resource is None:
            continue
        resource = _validated(resource, full=full)
        resources[f"{resource['resourceType']}/{resource['id']}"] = resource
    events = tuple(
        NotificationEvent(
            number=event["number"],
            focus=event["focus"],
            resource=resources.get(event["focus"] or ""),
        )
        for event in status["events"]
    )
    subscription = status.get("subscription")
    return ParsedNotification(
        kind=kind,
        subscription_ref=_reference(subscription, "subscription")
        if isinstance(subscription, dict)
        else None,
        status=_string(status.get("status"), "status"),
        events_since_start=_event_number(
            status.get("events-since-subscription-start"), "events-since-subscription-start"
        ),
        events=events,
    )


def check_path(path_type: str | None, path_id: str | None) -> None:
    """The resource type and id of a HAPI-style URL must look like FHIR's."""
    if path_type is not None and not _RESOURCE_TYPE.fullmatch(path_type):
        raise InvalidNotification("the URL does not name a FHIR resource type")
    if path_id is not None and not _FHIR_ID.fullmatch(path_id):
        raise InvalidNotification("the URL does not carry a FHIR id")


def parse_notification(
    payload: Any, *, path_type: str | None = None, path_id: str | None = None, full: bool = True
) -> ParsedNotification:
    """Classify a decoded JSON body (``None`` for an empty body) into a notification.

    ``full=False`` (the API's hot path): the resources a topic Bundle carries are checked
    for structure only; the worker validates them fully. A classic rest-hook body *is* the
    resource, so it is always validated before we answer.
    """
    check_path(path_type, path_id)
    if payload is None:
        if path_type:
            raise InvalidNotification("a resource body is required on this URL", code="required")
        return ParsedNotification(kind="classic-empty")
    if not isinstance(payload, dict) or not isinstance(payload.get("resourceType"), str):
        raise InvalidNotification("body must be a FHIR resource with a resourceType")
    if payload["resourceType"] == "Bundle" and path_type is None:
        return parse_topic_bundle(payload, full=full)
    resource = _validated(payload, expected_type=path_type)
    if path_id is not None and resource.get("id") != path_id:
        raise InvalidNotification("resource id does not match the URL")
    return ParsedNotification(kind="classic-resource", resource=resource)
