"""Parsing FHIR search parameters into a query we can run (pure: no I/O).

One table per resource type names every parameter we support; the parser reads it, and
the CapabilityStatement at ``/fhir/metadata`` is generated from it, so the two never
disagree. Anything not in the table, any modifier, any malformed value is refused with
a ``SearchError`` (a 400 ``OperationOutcome`` naming the parameter, never its value).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Literal

ParamType = Literal["token", "reference", "date"]


class SearchError(ValueError):
    """A search the API cannot run as asked: the message names the parameter only."""


@dataclass(frozen=True)
class SearchParam:
    name: str
    type: ParamType
    documentation: str
    # For references: the resource type a bare id means (``subject=123`` -> Patient/123).
    target: str | None = None
    # The index the parameter reads (two names may read one index: subject and patient).
    index: str = ""

    @property
    def key(self) -> str:
        return self.index or self.name


COMMUNICATION_PARAMS: tuple[SearchParam, ...] = (
    SearchParam("_id", "token", "Our id of the Communication"),
    SearchParam("_lastUpdated", "date", "When we recorded the newest version"),
    SearchParam("subject", "reference", "The patient the message was for", index="subject"),
    SearchParam(
        "patient", "reference", "Same as subject, Patients only", target="Patient", index="subject"
    ),
    SearchParam("sent", "date", "When the message was sent (eq, ne excluded; gt lt ge le)"),
    SearchParam("status", "token", "Communication.status"),
    SearchParam("category", "token", "Communication.category (system|code or code)"),
    SearchParam("medium", "token", "Communication.medium (e.g. SMSWRIT, EMAILWRIT)"),
    SearchParam("about", "reference", "What the message was about (e.g. the Appointment)"),
    SearchParam("based-on", "reference", "Communication.basedOn"),
    SearchParam("identifier", "token", "The business identifier (system|value)"),
)
COMMUNICATION_SORTS = ("sent", "-sent")

AUDIT_EVENT_PARAMS: tuple[SearchParam, ...] = (
    SearchParam("_id", "token", "Our id of the AuditEvent"),
    SearchParam("date", "date", "AuditEvent.recorded"),
    SearchParam("entity", "reference", "A resource the event is about", index="entity"),
    SearchParam(
        "patient", "reference", "The patient the event is about", target="Patient", index="patient"
    ),
    SearchParam("agent", "reference", "Who did it (e.g. Practitioner/…, Device/…)"),
    SearchParam("type", "token", "AuditEvent.type (system|code or code)"),
    SearchParam("subtype", "token", "AuditEvent.subtype (system|code or code)"),
    SearchParam("outcome", "token", "AuditEvent.outcome (0, 4, 8, 12)"),
)
AUDIT_EVENT_SORTS = ("date", "-date")

# Result parameters every search accepts; `_cursor` is the opaque paging token of `next`.
RESULT_PARAMS = ("_count", "_sort", "_summary", "_format", "_cursor")
DEFAULT_COUNT = 50
MAX_COUNT = 200
DATE_PREFIXES = ("eq", "gt", "lt", "ge", "le")
FORMATS = ("json", "application/json", "application/fhir+json")
MAX_VALUES = 50


@dataclass(frozen=True)
class TokenValue:
    """``system|code``: ``system`` None = any system, "" = no system; ``code`` None = any."""

    system: str | None
    code: str | None


@dataclass(frozen=True)
class DateBound:
    """``column <op> instant``, the instant and operator already resolved from precision."""

    op: Literal[">=", "<"]
    at: datetime


@dataclass(frozen=True)
class Criterion:
    """One parameter occurrence: its values are ORed; criteria are ANDed."""

    param: SearchParam
    tokens: tuple[TokenValue, ...] = ()
    dates: tuple[tuple[DateBound, ...], ...] = ()


@dataclass(frozen=True)
class SearchQuery:
    criteria: tuple[Criterion, ...] = ()
    count: int = DEFAULT_COUNT
    sort: str | None = None
    summary_count: bool = False
    cursor: str | None = None
    # The query without `_cursor`, canonical: what a cursor is bound to and `self` shows.
    canonical: tuple[tuple[str, str], ...] = field(default=())


def parse_search(
    items: list[tuple[str, str]], params: tuple[SearchParam, ...], sorts: tuple[str, ...]
) -> SearchQuery:
    """Turn query-string pairs into a ``SearchQuery``; refuse anything unsupported."""
    by_name = {p.name: p for p in params}
    criteria: list[Criterion] = []
    count, sort, summary, cursor = DEFAULT_COUNT, None, False, None
    canonical: list[tuple[str, str]] = []
    for name, value in items:
        if ":" in name:
            raise SearchError(f"modifiers are not supported (parameter {name.split(':')[0]})")
        if name == "_cursor":
            cursor = value
            continue
        canonical.append((name, value))
        if name == "_count":
            count = _count(value)
        elif name == "_sort":
            if value not in sorts:
                raise SearchError(f"_sort must be one of {', '.join(sorts)}")
            sort = value
        elif name == "_summary":
            if value != "count":
                raise SearchError("_summary supports only count")
            summary = True
        elif name == "_format":
            if value not in FORMATS:
                raise SearchError("_format supports only json")
        elif name in by_name:
            criteria.append(_criterion(by_name[name], value))
        else:
            raise SearchError(f"unsupported search parameter {safe_name(name)}")
    return SearchQuery(
        criteria=tuple(criteria),
        count=count,
        sort=sort,
        summary_count=summary,
        cursor=cursor,
        canonical=tuple(sorted(canonical)),
    )


def safe_name(name: str) -> str:
    """A parameter name is echoed only when it looks like one (never free text)."""
    return name if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.-]{0,40}", name) else "(unnamed)"


def _count(value: str) -> int:
    if not value.isdigit():
        raise SearchError("_count must be a whole number")
    return max(0, min(int(value), MAX_COUNT))


def _values(param: SearchParam, value: str) -> list[str]:
    parts = [part.replace("\\,", ",") for part in re.split(r"(?<!\\),", value)]
    if not value or any(not part for part in parts):
        raise SearchError(f"{param.name} needs a value")
    if len(parts) > MAX_VALUES:
        raise SearchError(f"{param.name} has too many values")
    return parts


def _criterion(param: SearchParam, value: str) -> Criterion:
    parts = _values(param, value)
    if param.type == "date":
        return Criterion(param, dates=tuple(parse_date_bounds(param.name, p) for p in parts))
    if param.type == "reference":
        return Criterion(param, tokens=tuple(_reference(param, p) for p in parts))
    return Criterion(param, tokens=tuple(_token(param, p) for p in parts))


def _token(param: SearchParam, value: str) -> TokenValue:
    if "|" not in value:
        return TokenValue(None, value)
    system, _, code = value.partition("|")
    if "|" in code:
        raise SearchError(f"{param.name} has a malformed token")
    if not code:
        if not system:
            raise SearchError(f"{param.name} has a malformed token")
        return TokenValue(system, None)
    return TokenValue(system, code)


_REFERENCE = re.compile(r"(?:.*/)?(?P<type>[A-Z][A-Za-z]+)/(?P<id>[A-Za-z0-9\-.]{1,64})")
_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")


def _reference(param: SearchParam, value: str) -> TokenValue:
    """References index as (type, id): ``Type/id``, an absolute URL ending so, or a bare id."""
    match = _REFERENCE.fullmatch(value)
    if match:
        if param.target and match["type"] != param.target:
            raise SearchError(f"{param.name} refers to {param.target} resources only")
        return TokenValue(match["type"], match["id"])
    if _ID.fullmatch(value):
        return TokenValue(param.target, value)
    raise SearchError(f"{param.name} has a malformed reference")


def reference_token(reference: str) -> TokenValue | None:
    """How a stored ``Type/id`` reference is indexed (None for anything else)."""
    match = _REFERENCE.fullmatch(reference)
    return TokenValue(match["type"], match["id"]) if match else None


_DATE = re.compile(
    r"(?P<y>\d{4})(?:-(?P<m>\d{2})(?:-(?P<d>\d{2})"
    r"(?:T(?P<H>\d{2}):(?P<M>\d{2})(?::(?P<S>\d{2})(?P<f>\.\d{1,9})?)?"
    r"(?P<tz>Z|[+-]\d{2}:\d{2}))?)?)?"
)


def parse_date_bounds(name: str, value: str) -> tuple[DateBound, ...]:
    """A FHIR date search value as bounds on an instant column, honouring its precision.

    ``ge2026-12`` -> on or after 1 Dec; ``le2026-12`` -> before 1 Jan; ``eq`` (or no prefix)
    -> within the month; a time needs its offset (dates without one are read as UTC).
    """
    prefix = value[:2] if value[:2].isalpha() else "eq"
    text = value[2:] if value[:2].isalpha() else value
    if prefix not in DATE_PREFIXES:
        raise SearchError(f"{name} supports the prefixes {', '.join(DATE_PREFIXES)}")
    start, end = _date_range(name, text)
    if prefix == "eq":
        return (DateBound(">=", start), DateBound("<", end))
    if prefix == "ge":
        return (DateBound(">=", start),)
    if prefix == "gt":
        return (DateBound(">=", end),)
    if prefix == "lt":
        return (DateBound("<", start),)
    return (DateBound("<", end),)  # le


def _date_range(name: str, text: str) -> tuple[datetime, datetime]:
    match = _DATE.fullmatch(text)
    if not match:
        raise SearchError(f"{name} is not a FHIR date or dateTime")
    try:
        year = int(match["y"])
        if match["m"] is None:
            return _utc(date(year, 1, 1)), _utc(date(year + 1, 1, 1))
        month = int(match["m"])
        if match["d"] is None:
            first = date(year, month, 1)
            following = date(year + month // 12, month % 12 + 1, 1)
            return _utc(first), _utc(following)
        day = date(year, month, int(match["d"]))
        if match["H"] is None:
            return _utc(day), _utc(day + timedelta(days=1))
        if match["tz"] is None:
            raise SearchError(f"{name}: a time needs a time zone (Z or +hh:mm)")
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise SearchError(f"{name} is not a valid date") from None
    if match["S"] is None:
        step = timedelta(minutes=1)
    elif match["f"] is None:
        step = timedelta(seconds=1)
    else:
        step = timedelta(microseconds=max(1, 10 ** (6 - min(6, len(match["f"]) - 1))))
    moment = moment.astimezone(UTC)
    return moment, moment + step


def _utc(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)
