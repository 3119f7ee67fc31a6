"""R4 date/dateTime handling for consent periods, including partial dates.

R4 allows ``2024``, ``2024-03``, ``2024-03-01`` and full timestamps. A period that
starts "in March" must not be in force on 1 March at 00:00 if it could start
later, and one that ends "in March" stays in force until the month is over, so
starts resolve to the earliest instant and ends to the latest one.
"""

from __future__ import annotations

import calendar
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any


def as_utc(moment: datetime) -> datetime:
    """``moment`` as aware UTC; naive datetimes are taken to be UTC already."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def parse_fhir_datetime(value: Any, *, latest: bool = False) -> datetime | None:
    """Parse an R4 date/dateTime to aware UTC; ``latest`` picks the end of a partial date."""
    if not isinstance(value, str) or not value:
        return None
    text = value.strip()
    try:
        if "T" in text:
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
            return as_utc(parsed)
        parts = [int(part) for part in text.split("-")]
    except ValueError:
        return None
    try:
        if len(parts) == 1:
            start, end = datetime(parts[0], 1, 1), datetime(parts[0] + 1, 1, 1)
        elif len(parts) == 2:
            days = calendar.monthrange(parts[0], parts[1])[1]
            start = datetime(parts[0], parts[1], 1)
            end = start + timedelta(days=days)
        elif len(parts) == 3:
            start = datetime(parts[0], parts[1], parts[2])
            end = start + timedelta(days=1)
        else:
            return None
    except ValueError:
        return None
    chosen = end - timedelta(microseconds=1) if latest else start
    return chosen.replace(tzinfo=UTC)


def period_covers(period: Any, now: datetime) -> bool:
    """True when ``now`` lies inside an R4 Period (open ends are unbounded).

    A malformed bound cannot be trusted to be in the past, so it counts as not
    covering ``now``.
    """
    if period is None:
        return True
    if not isinstance(period, Mapping):
        return False
    moment = as_utc(now)
    if period.get("start") is not None:
        start = parse_fhir_datetime(period.get("start"))
        if start is None or moment < start:
            return False
    if period.get("end") is not None:
        end = parse_fhir_datetime(period.get("end"), latest=True)
        if end is None or moment > end:
            return False
    return True
