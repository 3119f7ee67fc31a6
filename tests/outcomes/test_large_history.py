"""Measures on eight weeks of a clinic's outreach (over 1,000 messages), on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy.orm import Session, sessionmaker

from fhir_bridge.outcomes.measures import BY_CHOICES
from fhir_bridge.outcomes.service import default_since, load_report
from fhir_bridge.store.db import make_engine, make_session_factory
from tests.outcomes.history import History, seed_large_history

END = datetime(2026, 12, 1, 14, 0, tzinfo=UTC)


@pytest.fixture
def seeded(postgres_url: str) -> Iterator[tuple[sessionmaker[Session], History]]:
    engine = make_engine(postgres_url)
    factory = make_session_factory(engine)
    try:
        yield factory, seed_large_history(factory, END)
    finally:
        engine.dispose()


def test_every_grouping_adds_up_to_the_clinic_total(
    seeded: tuple[sessionmaker[Session], History],
) -> None:
    factory, history = seeded
    since = default_since(END.date())
    assert len(history.messages) >= 1000
    for by in BY_CHOICES:
        report = load_report(factory, by=by, since=since)
        total = report.total
        assert sum(g.messages for g in report.groups) == total.messages, by
        assert sum(g.delivered for g in report.groups) == total.delivered, by
        assert sum(g.opt_outs.numerator for g in report.groups) == total.opt_outs.numerator, by
        each = total.delivered + total.failed + total.withheld + total.cancelled
        assert each + total.in_progress + total.unknown == total.messages


def test_eight_weeks_give_eight_weekly_rows_with_plausible_rates(
    seeded: tuple[sessionmaker[Session], History],
) -> None:
    factory, _ = seeded
    report = load_report(factory, by="week", since=default_since(END.date()))
    assert len(report.groups) == 8
    total = report.total
    assert total.messages >= 1000
    assert 0.7 < total.delivered / total.messages < 0.95
    assert total.confirmations.percent is not None and 30 < total.confirmations.percent < 60
    assert total.crisis_replies > 0 and total.crisis_response.median_minutes is not None
    no_shows = report.no_show_total
    assert no_shows.reminded.denominator > 300 and no_shows.not_reminded.denominator > 100
    assert no_shows.reminded.percent is not None and no_shows.not_reminded.percent is not None
    assert no_shows.reminded.percent < no_shows.not_reminded.percent
