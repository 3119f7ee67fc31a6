"""Frequency caps across all rules (issue #3.5, defaults from issue #4).

Exempt healthcare texts are only exempt while they stay infrequent, so excess
messages are withheld with ``cap-reached`` rather than queued: a reminder that
is a week late is worse than none.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import date, datetime, timedelta
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

REASON_CAP_REACHED = "cap-reached"
_TIE_BREAK = {
    PURPOSE_DISCHARGE_CHECKIN: 0,
    PURPOSE_APPOINTMENT_REMINDER: 1,
    PURPOSE_REFILL_NOTICE: 2,
}


def _counts(sent: Sequence[datetime], day: date, zone: ZoneInfo) -> tuple[int, int]:
    week_start = day - timedelta(days=6)
    local_days = [moment.astimezone(zone).date() for moment in sent]
    return (
        sum(1 for d in local_days if d == day),
        sum(1 for d in local_days if week_start <= d <= day),
    )


def sent_counts(moments: Sequence[datetime], at: datetime, zone: ZoneInfo) -> tuple[int, int]:
    """How many of ``moments`` fall on the local day of ``at`` and in the 7 days ending then."""
    return _counts(moments, at.astimezone(zone).date(), zone)


def apply_caps(
    planned: Sequence[PlannedMessage],
    history: Sequence[SentRecord],
    caps: CapsConfig,
    default_zone: ZoneInfo,
) -> tuple[list[PlannedMessage], list[WithheldMessage]]:
    """Keep messages in send order while the day and rolling-week counts allow.

    Days are the recipient's local days; the week is the seven local days ending
    on the message's day. Already-sent history counts first.
    """
    kept: list[PlannedMessage] = []
    withheld: list[WithheldMessage] = []
    counted = [record.send_at for record in history]
    ordered = sorted(planned, key=lambda m: (m.send_at, _TIE_BREAK.get(m.purpose, 9), m.key))
    for message in ordered:
        zone_name = message.trace.get("zone")
        zone = ZoneInfo(zone_name) if isinstance(zone_name, str) else default_zone
        day_count, week_count = sent_counts(counted, message.send_at, zone)
        applied = {
            "per_day": {"limit": caps.per_day, "before": day_count},
            "per_week": {"limit": caps.per_week, "before": week_count},
        }
        trace = {**message.trace, "caps": applied}
        if day_count >= caps.per_day or week_count >= caps.per_week:
            which = "per-day" if day_count >= caps.per_day else "per-week"
            withheld.append(
                message.withhold(
                    REASON_CAP_REACHED,
                    f"{which} cap reached",
                    {**trace, "send_at": message.send_at.isoformat()},
                )
            )
            continue
        counted.append(message.send_at)
        kept.append(replace(message, trace=trace))
    return kept, withheld
