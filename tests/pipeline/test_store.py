"""The store on SQLite and PostgreSQL: schema, UTC datetimes, and claims that never collide."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import inspect, select
from sqlalchemy.exc import StatementError

from fhir_bridge import jobs
from fhir_bridge.outreach import repository
from fhir_bridge.runtime import Runtime
from fhir_bridge.store.db import transaction
from fhir_bridge.store.models import PlannedMessage, Watermark
from tests.pipeline.conftest import make_runtime
from tests.pipeline.messages import planned_row

LEASE = timedelta(minutes=2)


@pytest.fixture
def runtime(database_url: str, tmp_path: Path) -> Iterator[Runtime]:
    rt = make_runtime(database_url, tmp_path)
    yield rt
    rt.engine.dispose()


def _add(rt: Runtime, rows: list[PlannedMessage]) -> list[str]:
    with transaction(rt.sessions) as session:
        session.add_all(rows)
    return [row.id for row in rows]


def test_migrations_create_every_table(runtime: Runtime) -> None:
    tables = set(inspect(runtime.engine).get_table_names())

    assert {
        "subscription",
        "inbox_notification",
        "resource_state",
        "planned_message",
        "consent_ledger",
        "watermark",
    } <= tables


def test_utc_datetimes_come_back_aware_and_equal(runtime: Runtime) -> None:
    eastern = datetime(2026, 12, 1, 9, 30, 15, 123000).astimezone(UTC)
    with transaction(runtime.sessions) as session:
        session.add(Watermark(name="poll:Appointment", value=eastern))

    with transaction(runtime.sessions) as session:
        stored = session.scalar(select(Watermark.value).where(Watermark.name == "poll:Appointment"))

    assert stored is not None
    assert stored.tzinfo is not None
    assert stored == eastern


def test_naive_datetimes_are_refused(runtime: Runtime) -> None:
    with pytest.raises(StatementError, match="naive"), transaction(runtime.sessions) as session:
        session.add(Watermark(name="poll:Encounter", value=datetime(2026, 12, 1, 9, 30)))
        session.flush()


def test_only_one_of_two_claimers_wins_a_message(runtime: Runtime, fixed_now: datetime) -> None:
    (message_id,) = _add(runtime, [planned_row(fixed_now)])

    with transaction(runtime.sessions) as first:
        first_won = repository.claim(first, message_id, fixed_now, LEASE)
    with transaction(runtime.sessions) as second:
        second_won = repository.claim(second, message_id, fixed_now, LEASE)

    assert (first_won, second_won) == (True, False)


def test_a_message_not_yet_due_cannot_be_claimed(runtime: Runtime, fixed_now: datetime) -> None:
    (message_id,) = _add(runtime, [planned_row(fixed_now, send_at=fixed_now + timedelta(hours=1))])

    with transaction(runtime.sessions) as session:
        assert repository.claim(session, message_id, fixed_now, LEASE) is False


def test_concurrent_dispatchers_on_postgresql_never_claim_the_same_message(
    postgres_url: str, tmp_path: Path, fixed_now: datetime
) -> None:
    rt = make_runtime(postgres_url, tmp_path)
    rt.clock = lambda: fixed_now
    expected = set(_add(rt, [planned_row(fixed_now) for _ in range(60)]))
    results: list[list[str]] = [[], []]
    start = threading.Barrier(2)

    def dispatcher(slot: int) -> None:
        start.wait()
        for _ in range(10):
            results[slot].extend(jobs.claim_due_messages(rt, limit=7))

    threads = [threading.Thread(target=dispatcher, args=(slot,)) for slot in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    rt.engine.dispose()

    first, second = set(results[0]), set(results[1])
    assert len(results[0]) == len(first) and len(results[1]) == len(second)
    assert first.isdisjoint(second)
    assert first | second == expected
