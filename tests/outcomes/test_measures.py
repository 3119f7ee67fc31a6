"""Outcome measures on a history counted by hand, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import date

from sqlalchemy.orm import Session, sessionmaker

from fhir_bridge.outcomes.measures import GroupOutcome, Rate
from fhir_bridge.outcomes.service import load_report
from tests.outcomes.small_history import (
    LOC_EASTSIDE,
    LOC_RIVERSIDE,
    LOC_VALLE,
    SINCE,
    seed_small_history,
)


def _groups(factory: sessionmaker[Session], by: str) -> dict[str, GroupOutcome]:
    report = load_report(factory, by=by, since=SINCE)
    return {group.key: group for group in report.groups}


def test_the_clinic_wide_total_counts_every_outcome_of_the_period(
    factory: sessionmaker[Session],
) -> None:
    seed_small_history(factory)
    total = load_report(factory, by="week", since=SINCE).total
    assert (total.messages, total.delivered, total.failed, total.withheld) == (8, 5, 2, 1)
    assert total.withheld_by_reason == {"opted-out": 1}
    assert total.opt_outs == Rate(1, 5)  # the email unsubscribe; the STOP predates the period
    assert total.confirmations == Rate(1, 4)  # one C over four delivered reminders
    assert (total.reschedule_requests, total.crisis_replies) == (1, 1)
    assert total.staff_response.as_json() == {"handled": 2, "open": 1, "median_minutes": 48.0}
    assert total.crisis_response.median_minutes == 6.0


def test_weeks_are_iso_weeks_in_order(factory: sessionmaker[Session]) -> None:
    seed_small_history(factory)
    weeks = _groups(factory, "week")
    assert list(weeks) == ["2026-W45", "2026-W46"]
    w45, w46 = weeks["2026-W45"], weeks["2026-W46"]
    assert (w45.messages, w45.delivered, w45.failed, w45.withheld) == (3, 2, 1, 0)
    assert (w45.confirmations, w45.reschedule_requests) == (Rate(1, 2), 1)
    assert (w46.messages, w46.delivered, w46.failed, w46.withheld) == (5, 3, 1, 1)
    assert (w46.opt_outs, w46.crisis_replies) == (Rate(1, 3), 1)


def test_locations_are_labelled_with_their_name_and_messages_without_one_grouped(
    factory: sessionmaker[Session],
) -> None:
    seed_small_history(factory)
    places = _groups(factory, "location")
    assert {key: group.messages for key, group in places.items()} == {
        LOC_RIVERSIDE: 3,
        LOC_EASTSIDE: 3,
        "": 2,
    }
    assert places[LOC_RIVERSIDE].label == f"Riverside Family Medicine ({LOC_RIVERSIDE})"
    assert places[""].label == "(no location)"


def test_rule_channel_and_language_groupings(factory: sessionmaker[Session]) -> None:
    seed_small_history(factory)
    rules = _groups(factory, "rule")
    assert {k: g.messages for k, g in rules.items()} == {
        "appointment-reminder": 6,
        "discharge-checkin": 1,
        "refill-notice": 1,
    }
    assert rules["refill-notice"].failed == 1
    assert rules["discharge-checkin"].confirmations == Rate(0, 0)
    channels = _groups(factory, "channel")
    assert {k: g.messages for k, g in channels.items()} == {"sms": 6, "email": 1, "": 1}
    assert channels[""].label == "(no channel)"
    languages = _groups(factory, "language")
    assert {k: (g.messages, g.delivered) for k, g in languages.items()} == {
        "en": (5, 2),
        "es": (3, 3),
    }


def test_no_shows_of_reminded_and_not_reminded_appointments(
    factory: sessionmaker[Session],
) -> None:
    seed_small_history(factory)
    report = load_report(factory, by="location", since=SINCE)
    total = report.no_show_total
    assert (total.reminded, total.not_reminded) == (Rate(1, 4), Rate(2, 3))
    by_place = {row.key: (row.reminded, row.not_reminded) for row in report.no_shows}
    assert by_place == {
        LOC_RIVERSIDE: (Rate(0, 2), Rate(1, 1)),
        LOC_EASTSIDE: (Rate(1, 2), Rate(0, 0)),
        LOC_VALLE: (Rate(0, 0), Rate(0, 1)),
        "": (Rate(0, 0), Rate(1, 1)),
    }


def test_a_period_can_end_before_today(factory: sessionmaker[Session]) -> None:
    seed_small_history(factory)
    report = load_report(factory, by="week", since=SINCE, until=date(2026, 11, 9))
    assert [g.key for g in report.groups] == ["2026-W45"]
    assert report.total.messages == 3
    assert (report.no_show_total.reminded, report.no_show_total.not_reminded) == (
        Rate(1, 2),
        Rate(1, 2),
    )


def test_the_report_names_no_patient(factory: sessionmaker[Session]) -> None:
    history = seed_small_history(factory)
    text = str(load_report(factory, by="location", since=SINCE).as_json())
    assert not [value for value in history.phi if value in text]
