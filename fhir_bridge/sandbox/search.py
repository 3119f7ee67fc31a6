"""Search-parameter matching shared by REST search, If-None-Exist and subscription criteria."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from typing import Any
from urllib.parse import parse_qsl

from fhir_bridge.sandbox.outcomes import InvalidRequestError

SearchParams = list[tuple[str, str]]

RESULT_CONTROL_PARAMS = frozenset(
    {"_count", "_sort", "_total", "_format", "_summary", "_elements", "_pretty", "_include"}
)
_DATE_PREFIXES = ("ge", "gt", "le", "lt", "eq", "ne", "sa", "eb")
_DATE_PATTERN = re.compile(
    r"^(?P<year>\d{4})(?:-(?P<month>\d{2})(?:-(?P<day>\d{2})"
    r"(?:T(?P<hour>\d{2}):(?P<minute>\d{2})(?::(?P<second>\d{2})(?:\.(?P<fraction>\d+))?)?"
    r"(?P<tz>Z|[+-]\d{2}:\d{2})?)?)?)?$"
)


def parse_criteria(criteria: str) -> tuple[str, SearchParams]:
    """Split `Appointment?status=booked` into its type and parameters."""
    type_, _, query = criteria.strip().partition("?")
    if not re.fullmatch(r"[A-Z][A-Za-z]+", type_):
        raise InvalidRequestError("Criteria must start with a resource type")
    return type_, parse_qsl(query, keep_blank_values=True)


def matches(resource: dict[str, Any], params: SearchParams) -> bool:
    """True when the resource satisfies every (AND-ed) parameter; unknown ones are ignored."""
    return all(_matches_one(resource, name, value) for name, value in params)


def last_updated_ms(resource: dict[str, Any]) -> int:
    """The resource's meta.lastUpdated as epoch milliseconds (0 when absent)."""
    stamp = (resource.get("meta") or {}).get("lastUpdated")
    if not stamp:
        return 0
    start, _ = date_range_ms(stamp)
    return start


def date_range_ms(value: str) -> tuple[int, int]:
    """The [start, end) epoch-millisecond range a FHIR date/dateTime/instant denotes."""
    found = _DATE_PATTERN.match(value)
    if not found:
        raise InvalidRequestError("Unparseable date in search parameter")
    parts = found.groupdict()
    tz: tzinfo = UTC
    if parts["tz"] and parts["tz"] != "Z":
        sign = 1 if parts["tz"][0] == "+" else -1
        hours, minutes = parts["tz"][1:].split(":")
        tz = timezone(sign * timedelta(hours=int(hours), minutes=int(minutes)))
    year = int(parts["year"])
    month = int(parts["month"] or 1)
    day = int(parts["day"] or 1)
    start = datetime(
        year,
        month,
        day,
        int(parts["hour"] or 0),
        int(parts["minute"] or 0),
        int(parts["second"] or 0),
        int((parts["fraction"] or "0")[:6].ljust(6, "0")),
        tzinfo=tz,
    )
    if parts["month"] is None:
        end = start.replace(year=year + 1)
    elif parts["day"] is None:
        end = start.replace(year=year + month // 12, month=month % 12 + 1)
    elif parts["hour"] is None:
        end = start + timedelta(days=1)
    elif parts["second"] is None:
        end = start + timedelta(minutes=1)
    elif parts["fraction"] is None:
        end = start + timedelta(seconds=1)
    else:
        end = start + timedelta(milliseconds=1)
    return _epoch_ms(start), _epoch_ms(end)


def _epoch_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _matches_one(resource: dict[str, Any], name: str, value: str) -> bool:
    base_name, _, modifier = name.partition(":")
    alternatives = [item for item in value.split(",") if item != ""]
    if base_name in RESULT_CONTROL_PARAMS or not alternatives:
        return True
    matcher = _MATCHERS.get(base_name)
    if matcher is None:
        return True
    hit = any(matcher(resource, alternative) for alternative in alternatives)
    return not hit if modifier == "not" else hit


def _match_id(resource: dict[str, Any], value: str) -> bool:
    return resource.get("id") == value


def _match_status(resource: dict[str, Any], value: str) -> bool:
    return resource.get("status") == value


def _match_last_updated(resource: dict[str, Any], value: str) -> bool:
    prefix = value[:2] if value[:2] in _DATE_PREFIXES else "eq"
    raw = (value[2:] if value[:2] in _DATE_PREFIXES else value).replace(" ", "+")
    start, end = date_range_ms(raw)
    stamp = last_updated_ms(resource)
    comparisons = {
        "eq": start <= stamp < end,
        "ne": not start <= stamp < end,
        "ge": stamp >= start,
        "gt": stamp >= end,
        "sa": stamp >= end,
        "le": stamp < end,
        "lt": stamp < start,
        "eb": stamp < start,
    }
    return comparisons[prefix]


_FAR_FUTURE_MS = 2**62


def _resource_date_range_ms(resource: dict[str, Any]) -> tuple[int, int] | None:
    """[first, last] instant the `date` parameter reads (Appointment.start, Encounter.period)."""
    if resource.get("resourceType") == "Appointment":
        start = resource.get("start")
        if not start:
            return None
        moment = date_range_ms(str(start))[0]
        return moment, moment
    period = resource.get("period") or {}
    if resource.get("resourceType") != "Encounter" or not period:
        return None
    low = date_range_ms(str(period["start"]))[0] if period.get("start") else 0
    high = date_range_ms(str(period["end"]))[1] - 1 if period.get("end") else _FAR_FUTURE_MS
    return low, high


def _match_date(resource: dict[str, Any], value: str) -> bool:
    bounds = _resource_date_range_ms(resource)
    if bounds is None:
        return False
    prefix = value[:2] if value[:2] in _DATE_PREFIXES else "eq"
    raw = (value[2:] if value[:2] in _DATE_PREFIXES else value).replace(" ", "+")
    start, end = date_range_ms(raw)
    low, high = bounds
    within = start <= low and high < end
    comparisons = {
        "eq": within,
        "ne": not within,
        "ge": high >= start,
        "gt": high >= end,
        "sa": low >= end,
        "le": low < end,
        "lt": low < start,
        "eb": high < start,
    }
    return comparisons[prefix]


def _match_location(resource: dict[str, Any], value: str) -> bool:
    references = [
        (participant.get("actor") or {}).get("reference")
        for participant in resource.get("participant") or []
    ]
    references += [
        (item.get("location") or {}).get("reference") for item in resource.get("location") or []
    ]
    return any(_reference_matches(ref, value, "Location") for ref in references)


def _match_identifier(resource: dict[str, Any], value: str) -> bool:
    system, separator, code = value.partition("|")
    for identifier in resource.get("identifier") or []:
        if not separator:
            if identifier.get("value") == value:
                return True
            continue
        system_ok = not system or identifier.get("system") == system
        value_ok = not code or identifier.get("value") == code
        if system_ok and value_ok:
            return True
    return False


def _reference_matches(reference: str | None, value: str, required_type: str | None) -> bool:
    if not reference:
        return False
    segments = reference.split("/_history/")[0].rstrip("/").split("/")
    if len(segments) < 2:
        return False
    ref_type, ref_id = segments[-2], segments[-1]
    if required_type and ref_type != required_type:
        return False
    if "/" in value:
        wanted = value.rstrip("/").split("/")
        return (ref_type, ref_id) == (wanted[-2], wanted[-1])
    return ref_id == value


def _match_subject(resource: dict[str, Any], value: str) -> bool:
    return _reference_matches((resource.get("subject") or {}).get("reference"), value, None)


def _match_patient(resource: dict[str, Any], value: str) -> bool:
    references = [
        (resource.get("subject") or {}).get("reference"),
        (resource.get("patient") or {}).get("reference"),
    ]
    references += [
        (participant.get("actor") or {}).get("reference")
        for participant in resource.get("participant") or []
    ]
    return any(_reference_matches(ref, value, "Patient") for ref in references)


def _match_actor(resource: dict[str, Any], value: str) -> bool:
    return any(
        _reference_matches((participant.get("actor") or {}).get("reference"), value, None)
        for participant in resource.get("participant") or []
    )


_MATCHERS = {
    "_id": _match_id,
    "_lastUpdated": _match_last_updated,
    "status": _match_status,
    "identifier": _match_identifier,
    "subject": _match_subject,
    "patient": _match_patient,
    "actor": _match_actor,
    "date": _match_date,
    "location": _match_location,
}
