"""Read one period's facts in one short transaction, then compute the measures."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Final

from sqlalchemy.orm import Session, sessionmaker

from fhir_bridge.outcomes import repository
from fhir_bridge.outcomes.measures import Facts, OutcomeReport, compute
from fhir_bridge.store.db import transaction

DEFAULT_WEEKS: Final = 8


def default_since(today: date) -> date:
    """The Monday eight ISO weeks back (the current week included)."""
    return today - timedelta(days=today.weekday(), weeks=DEFAULT_WEEKS - 1)


def load_facts(factory: sessionmaker[Session], since: date, until: date | None = None) -> Facts:
    """Messages, replies and appointment outcomes from ``since`` (UTC day) to ``until``."""
    start = datetime.combine(since, time(), tzinfo=UTC)
    end = datetime.combine(until, time(), tzinfo=UTC) if until else None
    with transaction(factory) as session:
        messages = repository.message_counts(session, start, end)
        replies = repository.reply_facts(session, start, end)
        appointments = repository.appointment_outcomes(session, start, end)
        locations: Sequence[str] = sorted(
            {m.dims.location for m in messages if m.dims.location}
            | {a.location for a in appointments if a.location}
        )
        names = repository.location_names(session, locations)
    return Facts(messages, replies, appointments, names)


def load_report(
    factory: sessionmaker[Session], *, by: str, since: date, until: date | None = None
) -> OutcomeReport:
    return compute(load_facts(factory, since, until), by=by, since=since, until=until)
