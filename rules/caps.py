"""Frequency caps across all rules (issue #3.5, defaults from issue #4; deterministic per #8).

Exempt healthcare texts are only exempt while they stay infrequent, so excess
messages are withheld with ``cap-reached`` rather than queued: a reminder that
is a week late is worse than none.

Which message wins when the cap forces a choice
    The message about the **soonest event** wins, whatever order the EHR's
    notifications arrived in: an appointment reminder ranks by the appointment's
    start (:attr:`PlannedMessage.about_at`); a message without a dated subject
    (a refill notice, a discharge check-in) ranks by its own send time, because
    what it is about is due then. Ties go to discharge check-ins, then reminders,
    then refill notices, then send time, then key. Messages are admitted in that
    order while the recipient's local day stays under ``per_day`` and every
    rolling seven-day window containing that day stays under ``per_week``; a
    message already sent (history) always counts first. The outcome depends only
    on the set of messages, never on their order.

Provisional until the send time
    A cap decision is re-evaluated at every re-plan until the message's own send
    time (the competing appointment may be cancelled); only then is it final and
    written back as a not-done ``Communication`` (the pipeline holds the write
    until then, see ``fhir_bridge.outreach.planning``). :func:`cap_check` is the
    one counting rule, used here and again just before delivery
    (``rules.outreach``), so both decisions agree.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from operator import attrgetter
from typing import Any
from zoneinfo import ZoneInfo

from rules.config import CapsConfig
from rules.model import (
    PURPOSE_APPOINTMENT_REMINDER,
    PURPOSE_DISCHARGE_CHECKIN,
    PURPOSE_REFILL_NOTICE,
    PlannedMessage,
    SentRecord,
    WithheldMessage,
)
from rules.timing import iso_text, local_day

REASON_CAP_REACHED = "cap-reached"
_BY_SEND_TIME = attrgetter("send_at", "key")
_BY_KEY = attrgetter("key")
_WEEK = 7
_TIE_BREAK = {
    PURPOSE_DISCHARGE_CHECKIN: 0,
    PURPOSE_APPOINTMENT_REMINDER: 1,
    PURPOSE_REFILL_NOTICE: 2,
}


@dataclass(frozen=True)
class Counted:
    """A message that counts toward the caps: sent already, or admitted by this plan."""

    key: str
    at: datetime


def rank(message: PlannedMessage) -> tuple[datetime, int, datetime, str]:
    """Sort key for admission: soonest subject first, then purpose, send time, key."""
    return (
        message.about_at or message.send_at,
        _TIE_BREAK.get(message.purpose, 9),
        message.send_at,
        message.key,
    )


def _busiest_week(days: Sequence[date], day: date) -> int:
    """The most messages in any seven-local-day window that contains ``day``."""
    # Only days less than a week away can share a window with ``day``; as day offsets.
    return _busiest_window([o for o in ((d - day).days for d in days) if -_WEEK < o < _WEEK])


def _busiest_window(near: Sequence[int]) -> int:
    """The most of ``near`` (day offsets from a day, each less than a week away) in any
    seven-day window that contains that day."""
    if len(near) < 2:
        return len(near)  # a day less than a week away shares some window with the day
    if len(near) == 2:  # the usual case, directly: is there a window start fitting both?
        first, second = near
        return 2 if max(first, second, 0) - _WEEK + 1 <= min(first, second, 0) else 1
    busiest = 0
    for end in range(_WEEK):
        count = 0
        for offset in near:
            if end - _WEEK < offset <= end:
                count += 1
        busiest = max(busiest, count)
    return busiest


def cap_check(
    counted: Iterable[Counted], at: datetime, zone: ZoneInfo, caps: CapsConfig
) -> tuple[str | None, dict[str, Any]]:
    """Whether one more message at ``at`` would break a cap, and the counts as traced.

    Days are the recipient's local days in ``zone``. Returns the detail
    (``per-day cap reached`` / ``per-week cap reached``) or ``None``, and the
    ``caps`` trace: each limit, the count already there, and the keys counted on
    that day (who took the slot).
    """
    items = list(counted)
    days = [item.at.astimezone(zone).date() for item in items]
    return _cap_decision([item.key for item in items], days, at.astimezone(zone).date(), caps)


def _cap_decision(
    keys: Sequence[str], days: Sequence[date], day: date, caps: CapsConfig
) -> tuple[str | None, dict[str, Any]]:
    """:func:`cap_check` on messages already placed on the recipient's local days."""
    same_day: list[str] = []
    near: list[int] = []  # as in _busiest_week, in one pass with the same day's keys
    for key, other in zip(keys, days, strict=True):
        if other == day:
            same_day.append(key)
        offset = (other - day).days
        if -_WEEK < offset < _WEEK:
            near.append(offset)
    week_count = _busiest_window(near)
    applied: dict[str, Any] = {
        "per_day": {"limit": caps.per_day, "before": len(same_day)},
        "per_week": {"limit": caps.per_week, "before": week_count},
    }
    if len(same_day) >= caps.per_day:
        return "per-day cap reached", applied | {"taken_by": sorted(same_day)}
    if week_count >= caps.per_week:
        return "per-week cap reached", applied
    return None, applied


def apply_caps(
    planned: Sequence[PlannedMessage],
    history: Sequence[SentRecord],
    caps: CapsConfig,
    default_zone: ZoneInfo,
) -> tuple[list[PlannedMessage], list[WithheldMessage]]:
    """Admit messages soonest-subject first while the day and rolling-week caps allow.

    History counts first. Each message's day is its recipient's local day (the
    ``zone`` in its trace, else ``default_zone``). Kept messages come back in send
    order; the result does not depend on the order of ``planned``.
    """
    kept: list[PlannedMessage] = []
    withheld: list[WithheldMessage] = []
    # What counts so far (history first, then each admitted message), and its local days
    # per recipient zone, placed once rather than at every message.
    keys = [record.key for record in history]
    moments = [record.send_at for record in history]
    days_in: dict[ZoneInfo, list[date]] = {}
    zones: dict[str, ZoneInfo] = {}
    for message in sorted(planned, key=rank):
        zone_name = message.trace.get("zone")
        if isinstance(zone_name, str):
            zone = zones.get(zone_name) or zones.setdefault(zone_name, ZoneInfo(zone_name))
        else:
            zone = default_zone
        days = days_in.get(zone)
        if days is None:
            days = days_in[zone] = [local_day(moment, zone) for moment in moments]
        day = local_day(message.send_at, zone)
        detail, applied = _cap_decision(keys, days, day, caps)
        if message.about_at is not None:
            applied["priority"] = iso_text(message.about_at)
        trace = {**message.trace, "caps": applied}
        if detail is not None:
            withheld.append(
                message.withhold(
                    REASON_CAP_REACHED, detail, {**trace, "send_at": iso_text(message.send_at)}
                )
            )
            continue
        keys.append(message.key)
        moments.append(message.send_at)
        for other, other_days in days_in.items():
            other_days.append(day if other is zone else local_day(message.send_at, other))
        kept.append(message.with_trace(trace))
    kept.sort(key=_BY_SEND_TIME)
    withheld.sort(key=_BY_KEY)
    return kept, withheld
