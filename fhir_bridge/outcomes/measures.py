"""Outcome measures: pure arithmetic over the facts ``outcomes.repository`` reads.

Per rule, channel, location, language or ISO week: messages delivered / failed / withheld
(by reason), opt-out and confirmation rates, reschedule requests, crisis replies, time to a
staff response, and the no-show rate of reminded against not-reminded appointments.

Definitions (also in the README):

* **delivered**: sent to the provider and not reported failed by it (email has no delivery
  receipts; an SMS the provider reports ``undelivered``/``failed`` counts as failed).
* **failed**: we gave up (``failed``) or the provider reported it undelivered.
* **opt-out rate**: SMS STOP replies and email unsubscribes / delivered.
* **confirmation rate**: confirm replies (C) / delivered appointment reminders.
* **time to a staff response**: staff-inbox item created → marked handled (median).

A rate over fewer than ``SMALL_COUNT`` cases is shown as a count ("3 of 7"), never as a
percentage. Nothing here knows a patient: the facts carry no patient reference.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Final

from fhir_bridge.outcomes.repository import (
    AppointmentOutcome,
    Dimensions,
    MessageCount,
    ReplyFact,
)
from rules.appointments import RULE as APPOINTMENT_RULE

BY_CHOICES: Final = ("rule", "channel", "location", "language", "week")
SMALL_COUNT: Final = 10
FAILED_DELIVERY: Final = frozenset({"undelivered", "failed"})
OPEN_STATUSES: Final = frozenset({"planned", "queued", "sending"})
NO_CASES: Final = "\u2013"  # an en dash: nothing to count
NONE_LABEL: Final = {"channel": "(no channel)", "location": "(no location)"}


@dataclass(frozen=True)
class Rate:
    """``numerator`` out of ``denominator``; a percentage only from ``SMALL_COUNT`` cases."""

    numerator: int
    denominator: int

    @property
    def small(self) -> bool:
        return self.denominator < SMALL_COUNT

    @property
    def percent(self) -> float | None:
        if self.small:
            return None
        return round(100.0 * self.numerator / self.denominator, 1)

    def text(self) -> str:
        if self.denominator == 0:
            return NO_CASES
        if self.percent is None:
            return f"{self.numerator} of {self.denominator}"
        return f"{self.percent:.1f}%"

    def as_json(self) -> dict[str, Any]:
        return {
            "numerator": self.numerator,
            "denominator": self.denominator,
            "percent": self.percent,
        }


@dataclass(frozen=True)
class ResponseTime:
    """Minutes from a staff-inbox item to its handling: median over the handled ones."""

    handled: int
    still_open: int
    median_minutes: float | None

    def text(self) -> str:
        if self.median_minutes is None:
            return NO_CASES if not self.still_open else f"none handled ({self.still_open} open)"
        median = _minutes_text(self.median_minutes)
        return median if self.handled >= SMALL_COUNT else f"{median} (n={self.handled})"

    def as_json(self) -> dict[str, Any]:
        return {
            "handled": self.handled,
            "open": self.still_open,
            "median_minutes": self.median_minutes,
        }


def _minutes_text(minutes: float) -> str:
    if minutes < 90:
        return f"{minutes:.0f} min"
    if minutes < 48 * 60:
        return f"{minutes / 60:.1f} h"
    return f"{minutes / 1440:.1f} d"


@dataclass
class _Tally:
    messages: int = 0
    delivered: int = 0
    failed: int = 0
    withheld: int = 0
    cancelled: int = 0
    in_progress: int = 0
    unknown: int = 0
    delivered_reminders: int = 0
    withheld_by_reason: Counter[str] = field(default_factory=Counter)
    intents: Counter[str] = field(default_factory=Counter)
    response_minutes: list[float] = field(default_factory=list)
    crisis_minutes: list[float] = field(default_factory=list)
    open_items: int = 0
    open_crisis: int = 0


@dataclass(frozen=True)
class GroupOutcome:
    """The measures of one group (one rule, channel, location, language or week)."""

    key: str
    label: str
    messages: int
    delivered: int
    failed: int
    withheld: int
    withheld_by_reason: Mapping[str, int]
    cancelled: int
    in_progress: int
    unknown: int
    opt_outs: Rate
    confirmations: Rate
    reschedule_requests: int
    crisis_replies: int
    staff_response: ResponseTime
    crisis_response: ResponseTime

    def as_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "label": self.label,
            "messages": self.messages,
            "delivered": self.delivered,
            "failed": self.failed,
            "withheld": self.withheld,
            "withheld_by_reason": dict(self.withheld_by_reason),
            "cancelled": self.cancelled,
            "in_progress": self.in_progress,
            "unknown": self.unknown,
            "opt_out_rate": self.opt_outs.as_json(),
            "confirmation_rate": self.confirmations.as_json(),
            "reschedule_requests": self.reschedule_requests,
            "crisis_replies": self.crisis_replies,
            "time_to_staff_response": self.staff_response.as_json(),
            "time_to_staff_response_crisis": self.crisis_response.as_json(),
        }


@dataclass(frozen=True)
class NoShowOutcome:
    """No-shows among reminded and among not-reminded appointments of one group."""

    key: str
    label: str
    reminded: Rate
    not_reminded: Rate

    def as_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "label": self.label,
            "reminded": self.reminded.as_json(),
            "not_reminded": self.not_reminded.as_json(),
        }


@dataclass(frozen=True)
class Facts:
    """Everything the measures read, for one period."""

    messages: Sequence[MessageCount]
    replies: Sequence[ReplyFact]
    appointments: Sequence[AppointmentOutcome]
    location_names: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class OutcomeReport:
    since: date
    until: date | None
    by: str
    groups: Sequence[GroupOutcome]
    total: GroupOutcome
    no_shows: Sequence[NoShowOutcome]
    no_show_total: NoShowOutcome

    def as_json(self) -> dict[str, Any]:
        return {
            "since": self.since.isoformat(),
            "until": self.until.isoformat() if self.until else None,
            "by": self.by,
            "small_count": SMALL_COUNT,
            "groups": [group.as_json() for group in self.groups],
            "total": self.total.as_json(),
            "no_shows": [row.as_json() for row in self.no_shows],
            "no_show_total": self.no_show_total.as_json(),
        }


def iso_week(day: date) -> str:
    """``2026-W49``: the ISO 8601 week of a day."""
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}"


def _key_function(by: str) -> Callable[[Dimensions], str]:
    if by == "week":
        return lambda dims: iso_week(dims.day)
    if by not in BY_CHOICES:
        raise ValueError(f"by must be one of {', '.join(BY_CHOICES)}")
    return lambda dims: getattr(dims, by) or ""


def compute(facts: Facts, *, by: str, since: date, until: date | None = None) -> OutcomeReport:
    """The measures of every group, the clinic-wide total and the no-show comparison."""
    key_of = _key_function(by)
    tallies: dict[str, _Tally] = defaultdict(_Tally)
    total = _Tally()
    for count in facts.messages:
        for tally in (tallies[key_of(count.dims)], total):
            _add_messages(tally, count)
    for reply in facts.replies:
        for tally in (tallies[key_of(reply.dims)], total):
            _add_reply(tally, reply)
    keys = sorted(tallies, key=lambda k: (k,) if by == "week" else (-tallies[k].messages, k))
    groups = [_outcome(key, _label(by, key, facts.location_names), tallies[key]) for key in keys]
    no_shows, no_show_total = _no_shows(facts.appointments, by, facts.location_names)
    return OutcomeReport(
        since=since,
        until=until,
        by=by,
        groups=groups,
        total=_outcome("all", "All", total),
        no_shows=no_shows,
        no_show_total=no_show_total,
    )


def _label(by: str, key: str, names: Mapping[str, str]) -> str:
    if not key:
        return NONE_LABEL.get(by, "(none)")
    if by == "location" and key in names:
        return f"{names[key]} ({key})"
    return key


def _add_messages(tally: _Tally, count: MessageCount) -> None:
    n = count.count
    tally.messages += n
    if count.status == "sent" and count.delivery_status not in FAILED_DELIVERY:
        tally.delivered += n
        if count.dims.rule == APPOINTMENT_RULE:
            tally.delivered_reminders += n
    elif count.status in ("sent", "failed"):
        tally.failed += n
    elif count.status == "withheld":
        tally.withheld += n
        tally.withheld_by_reason[count.reason or "unspecified"] += n
    elif count.status == "cancelled":
        tally.cancelled += n
    elif count.status in OPEN_STATUSES:
        tally.in_progress += n
    else:
        tally.unknown += n


def _add_reply(tally: _Tally, reply: ReplyFact) -> None:
    tally.intents[reply.intent] += 1
    if reply.inbox_created_at is None:
        return
    crisis = reply.inbox_kind == "crisis"
    if reply.handled_at is None:
        tally.open_items += 1
        tally.open_crisis += crisis
        return
    minutes = max(0.0, (reply.handled_at - reply.inbox_created_at).total_seconds() / 60)
    tally.response_minutes.append(minutes)
    if crisis:
        tally.crisis_minutes.append(minutes)


def _response(minutes: list[float], still_open: int) -> ResponseTime:
    median = round(statistics.median(minutes), 1) if minutes else None
    return ResponseTime(handled=len(minutes), still_open=still_open, median_minutes=median)


def _outcome(key: str, label: str, tally: _Tally) -> GroupOutcome:
    return GroupOutcome(
        key=key,
        label=label,
        messages=tally.messages,
        delivered=tally.delivered,
        failed=tally.failed,
        withheld=tally.withheld,
        withheld_by_reason=dict(tally.withheld_by_reason.most_common()),
        cancelled=tally.cancelled,
        in_progress=tally.in_progress,
        unknown=tally.unknown,
        opt_outs=Rate(tally.intents["opt-out"], tally.delivered),
        confirmations=Rate(tally.intents["confirm"], tally.delivered_reminders),
        reschedule_requests=tally.intents["reschedule"],
        crisis_replies=tally.intents["crisis"],
        staff_response=_response(tally.response_minutes, tally.open_items),
        crisis_response=_response(tally.crisis_minutes, tally.open_crisis),
    )


def _no_shows(
    appointments: Iterable[AppointmentOutcome], by: str, names: Mapping[str, str]
) -> tuple[list[NoShowOutcome], NoShowOutcome]:
    def key_of(appointment: AppointmentOutcome) -> str:
        if by == "location":
            return appointment.location or ""
        if by == "week":
            return iso_week(_start_day(appointment.start))
        return "all"

    counts: dict[str, Counter[tuple[bool, str]]] = defaultdict(Counter)
    total: Counter[tuple[bool, str]] = Counter()
    for appointment in appointments:
        for counter in (counts[key_of(appointment)], total):
            counter[(appointment.reminded, appointment.status)] += 1
    grouped = by in ("location", "week")
    keys = sorted(counts, key=lambda k: (k == "", k)) if grouped else []
    rows = [_no_show_row(key, _label(by, key, names), counts[key]) for key in keys]
    return rows, _no_show_row("all", "All", total)


def _no_show_row(key: str, label: str, counts: Counter[tuple[bool, str]]) -> NoShowOutcome:
    def rate(reminded: bool) -> Rate:
        no_shows = counts[(reminded, "noshow")]
        return Rate(no_shows, no_shows + counts[(reminded, "fulfilled")])

    return NoShowOutcome(key=key, label=label, reminded=rate(True), not_reminded=rate(False))


def _start_day(start: str) -> date:
    return datetime.fromisoformat(start.replace("Z", "+00:00")).date()
