"""The outreach timeline a member of staff reads: one entry per planned message (pure).

Times are shown in the local time of the place of care (the zone the rules decided,
kept in the message's trace), each row names what it is about (the appointment's date,
time and place, the prescription, the stay), and a withheld row shows when the message
was due. Staff see the Location's own name even where the rules would not print it to a
patient: staff are not patients, and they already see it in the chart.

Addresses are masked (last four digits / email domain) even here: staff need to
recognise which number was used, not read it back to anyone.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fhir_bridge.outreach.repository import OPEN_STATUSES
from fhir_bridge.store.models import REASON_CANCELLED_BY_STAFF, MessageStatus, PlannedMessage
from rules.consent import mask_address
from smart_app import glossary

STAFF_CANCEL_REASON: Final = REASON_CANCELLED_BY_STAFF
WENT_OUT: Final = frozenset({MessageStatus.SENT, MessageStatus.UNKNOWN, MessageStatus.SENDING})


@dataclass(frozen=True)
class TimelineEntry:
    """What the panel shows for one message; ``why`` is the rule's trace, pretty-printed."""

    id: str
    when: str
    when_local: str
    when_label: str
    zone: str
    about: str
    rule: str
    purpose: str
    purpose_label: str
    channel: str | None
    channel_label: str
    address_hint: str | None
    status: str
    status_label: str
    reason: str | None
    reason_label: str
    reason_detail: str | None
    text: str | None
    subject: str | None
    communication_id: str | None
    cancellable: bool
    why: str

    def as_json(self) -> dict[str, Any]:
        """The JSON twin (``/smart/api/timeline``), with the trace as an object."""
        body = asdict(self)
        body["why"] = json.loads(self.why)
        return body


def timeline_entries(
    rows: Iterable[PlannedMessage],
    *,
    places: Mapping[str, str] | None = None,
    default_zone: str = "UTC",
) -> list[TimelineEntry]:
    """Entries newest first; the rendered text only for messages that went out.

    ``places`` maps ``Location/…`` references to their display names.
    """
    ordered = sorted(rows, key=lambda row: (_moment(row), row.id), reverse=True)
    return [_entry(row, places or {}, default_zone) for row in ordered]


def _moment(row: PlannedMessage) -> datetime:
    return row.sent_at or row.send_at


def _status(row: PlannedMessage) -> MessageStatus:
    try:
        return MessageStatus(row.status)
    except ValueError:
        return MessageStatus.UNKNOWN


def _entry(row: PlannedMessage, places: Mapping[str, str], default_zone: str) -> TimelineEntry:
    status = _status(row)
    trace = row.trace or {}
    zone = _zone(trace, default_zone)
    went_out = status in WENT_OUT
    label, moment = _when(row, status, trace)
    return TimelineEntry(
        id=row.id,
        when=moment.isoformat(timespec="minutes"),
        when_local=local_text(moment, zone),
        when_label=label,
        zone=zone.key,
        about=describe_about(row, trace, places, zone),
        rule=row.rule,
        purpose=row.purpose,
        purpose_label=glossary.words(glossary.PURPOSES, row.purpose),
        channel=row.channel,
        channel_label=glossary.words(glossary.CHANNELS, row.channel),
        address_hint=mask_address(row.address) if row.address else None,
        status=status.value,
        status_label=glossary.STATUSES[status],
        reason=row.reason,
        reason_label=glossary.reason(row.reason),
        reason_detail=row.reason_detail,
        text=row.text if went_out else None,
        subject=row.subject_line if went_out else None,
        communication_id=row.communication_id,
        cancellable=status in OPEN_STATUSES,
        why=json.dumps(trace, indent=2, sort_keys=True, default=str),
    )


def _when(
    row: PlannedMessage, status: MessageStatus, trace: Mapping[str, Any]
) -> tuple[str, datetime]:
    """Which moment the row stands for, and what to call it."""
    if row.sent_at is not None:
        return "Sent", row.sent_at
    if status == MessageStatus.WITHHELD:
        due = _due_from_trace(trace)
        return ("Was due", due) if due is not None else ("Decided", row.send_at)
    if status == MessageStatus.CANCELLED:
        return "Was due", row.send_at
    if status == MessageStatus.FAILED:
        return "Tried", row.send_at
    return "Due", row.send_at


def _due_from_trace(trace: Mapping[str, Any]) -> datetime | None:
    """The time the rules planned the message for (the plan's trace or the withheld one)."""
    for source in (trace, trace.get("withheld") or {}):
        if not isinstance(source, Mapping):
            continue
        for key in ("send_at_local", "due_local"):
            moment = _parse(source.get(key))
            if moment is not None:
                return moment
    return None


def _zone(trace: Mapping[str, Any], default_zone: str) -> ZoneInfo:
    """The place of care's zone (``venue_zone``), else the rule's zone, else the clinic's."""
    withheld = trace.get("withheld")
    candidates = [trace.get("venue_zone"), trace.get("zone")]
    if isinstance(withheld, Mapping):
        candidates += [withheld.get("venue_zone"), withheld.get("zone")]
    for name in [*candidates, default_zone]:
        if isinstance(name, str) and name:
            try:
                return ZoneInfo(name)
            except (ZoneInfoNotFoundError, ValueError):
                continue
    return ZoneInfo("UTC")


def local_text(moment: datetime, zone: ZoneInfo) -> str:
    """``Thu Dec 3, 9:30 AM EST``: how a clinician reads a time in the chart."""
    local = moment.astimezone(zone)
    hour = local.strftime("%I").lstrip("0")
    return f"{local:%a %b} {local.day}, {hour}:{local:%M %p} {local.tzname()}"


def describe_about(
    row: PlannedMessage, trace: Mapping[str, Any], places: Mapping[str, str], zone: ZoneInfo
) -> str:
    """What the message is about, in words: appointment (date, time, place), refill, stay."""
    inputs = _inputs(trace)
    purpose = row.purpose
    if purpose == "appointment-reminder":
        appointments = inputs.get("appointments") or []
        first = appointments[0] if appointments and isinstance(appointments[0], Mapping) else {}
        start = _parse(first.get("start"), zone)
        parts = ["Appointment"]
        if start is not None:
            parts.append(local_text(start, zone))
        place = places.get(str(inputs.get("location") or ""))
        if place:
            parts.append(place)
        text = " · ".join(parts)
        return text + (f" (+{len(appointments) - 1} more)" if len(appointments) > 1 else "")
    if purpose == "refill-notice":
        return "Prescription refill"
    if purpose == "discharge-checkin":
        discharged = _parse(inputs.get("discharge"), zone)
        return "Hospital stay" + (
            f", discharged {local_text(discharged, zone)}" if discharged else ""
        )
    return glossary.words(glossary.PURPOSES, purpose)


def _inputs(trace: Mapping[str, Any]) -> Mapping[str, Any]:
    for source in (trace, trace.get("withheld") or {}):
        if isinstance(source, Mapping) and isinstance(source.get("inputs"), Mapping):
            return source["inputs"]
    return {}


def _parse(value: Any, zone: ZoneInfo | None = None) -> datetime | None:
    """An ISO date-time; one without an offset is read in ``zone`` (``None`` without one)."""
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=zone) if zone is not None else None
    return moment


def location_refs(rows: Iterable[PlannedMessage]) -> set[str]:
    """The Locations the rows' traces name (to look their names up)."""
    refs = set()
    for row in rows:
        location = _inputs(row.trace or {}).get("location")
        if isinstance(location, str) and location.startswith("Location/"):
            refs.add(location)
    return refs
