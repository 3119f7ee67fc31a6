"""Wall-clock arithmetic for send times: offsets, time zones and quiet hours.

Patients live by their local clock, so "one day before" means the same local
time the day before, even across a DST change, while "two hours before" is an
exact duration. Quiet hours never drop a message: they move it into the window.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from rules.fhir_json import TIMEZONE_EXTENSION, extension_value

_OFFSET_PATTERN = re.compile(
    r"^P(?:(?P<weeks>\d+)W)?(?:(?P<days>\d+)D)?(?:T(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?)?$"
)


class InvalidOffsetError(ValueError):
    """An offset in the rules file is not a supported ISO-8601 duration."""


@dataclass(frozen=True)
class Offset:
    """An ISO-8601 duration split into calendar days (wall clock) and exact seconds."""

    text: str
    days: int
    seconds: int


@lru_cache(maxsize=1024)
def parse_offset(text: str) -> Offset:
    """Parse ``P3D``, ``PT2H``, ``P1DT12H``, ``P2W``; reject anything vaguer (months).

    Parsed once per text: the rules file's durations are parsed when it loads (its
    validation), and planning reuses those results for every message.
    """
    match = _OFFSET_PATTERN.match(text)
    if not match or text in ("P", "PT") or text.endswith("T"):
        raise InvalidOffsetError(f"unsupported duration {text!r} (use e.g. P3D, PT2H, P1DT12H)")
    parts = {name: int(value or 0) for name, value in match.groupdict().items()}
    days = parts["weeks"] * 7 + parts["days"]
    seconds = parts["hours"] * 3600 + parts["minutes"] * 60
    return Offset(text=text, days=days, seconds=seconds)


def before(moment: datetime, offset: Offset, zone: ZoneInfo) -> datetime:
    """``moment`` minus ``offset``: days on the local wall clock, the rest exactly (UTC)."""
    local = moment.astimezone(zone).replace(tzinfo=None) - timedelta(days=offset.days)
    shifted = local.replace(tzinfo=zone).astimezone(UTC)
    return shifted - timedelta(seconds=offset.seconds)


def at_local(day: date, clock: time, zone: ZoneInfo) -> datetime:
    """The UTC instant of a local date and wall-clock time."""
    return datetime.combine(day, clock, tzinfo=zone).astimezone(UTC)


def zone_or_none(name: Any) -> ZoneInfo | None:
    """A ZoneInfo for an IANA name, or ``None`` for unknown or malformed names."""
    if not isinstance(name, str) or not name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def resolve_zone(
    *sources: tuple[str, Any],
    default: str,
) -> tuple[ZoneInfo, str]:
    """Pick the first usable time zone among named sources, else ``default``.

    Each source is ``(label, value)`` where value is a resource carrying the
    R4 timezone extension or a plain IANA name; the label goes into the trace.
    """
    for label, value in sources:
        name = extension_value(value, TIMEZONE_EXTENSION) if isinstance(value, Mapping) else value
        zone = zone_or_none(name)
        if zone is not None:
            return zone, label
    return ZoneInfo(default), "default"


@dataclass(frozen=True)
class QuietHours:
    """The local window in which messages may be sent, inclusive at both ends."""

    start: time
    end: time

    def contains(self, clock: time) -> bool:
        """True when a local wall-clock time is inside the sending window."""
        return self.start <= clock <= self.end


def into_window(
    candidate: datetime,
    zone: ZoneInfo,
    window: QuietHours,
    deadline: datetime | None = None,
) -> tuple[datetime, str | None]:
    """Move ``candidate`` into the sending window, returning the time and what was done.

    A send outside the window moves to the next opening, unless that would land
    at or after ``deadline`` (an appointment start), in which case it moves back
    to the previous closing instead. Nothing is ever dropped here.
    """
    local = candidate.astimezone(zone)
    clock = local.time().replace(tzinfo=None)
    if window.contains(clock):
        return candidate, None
    if clock < window.start:
        later = at_local(local.date(), window.start, zone)
        earlier = at_local(local.date() - timedelta(days=1), window.end, zone)
    else:
        later = at_local(local.date() + timedelta(days=1), window.start, zone)
        earlier = at_local(local.date(), window.end, zone)
    if deadline is None or later < deadline:
        return later, "moved-after-quiet-hours"
    return earlier, "moved-before-quiet-hours"


def local_iso(moment: datetime, zone: ZoneInfo) -> str:
    """ISO text of an instant in a zone, for traces a human will read."""
    return moment.astimezone(zone).isoformat()


def iso_text(moment: datetime) -> str:
    """``moment.isoformat()``, remembered for UTC instants: a day's plans print the same
    few hundred appointment starts and send times (two UTC datetimes that are equal
    print the same)."""
    if moment.tzinfo is UTC:
        return _utc_iso_text(moment)
    return moment.isoformat()


@lru_cache(maxsize=4096)
def _utc_iso_text(moment: datetime) -> str:
    return moment.isoformat()


@lru_cache(maxsize=4096)
def local_day(moment: datetime, zone: ZoneInfo) -> date:
    """The date of an instant on the wall clock of ``zone`` (caps count local days)."""
    return moment.astimezone(zone).date()
