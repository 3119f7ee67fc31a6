"""Dispatch claim throughput with 100,000 due messages waiting (issue #10, goal ≥ 2,000/s).

Fills ``planned_message`` with due rows, then claims them all, measured two ways in the
same run on the same data: the old way (select candidates, then one conditional UPDATE
per message, 500 per transaction) and ``MessageLifecycle.claim_batch`` (one
``UPDATE … FROM (SELECT … FOR UPDATE SKIP LOCKED LIMIT n) RETURNING`` per batch). Prints
messages claimed per second for each and the ratio. Only the claims are timed.

    .venv/bin/python benchmarks/bench_claim.py --database postgresql [--messages 100000]
    .venv/bin/python benchmarks/bench_claim.py --database sqlite
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fhir_bridge.outreach.lifecycle import MessageLifecycle
from fhir_bridge.store.db import make_engine, make_session_factory, transaction
from fhir_bridge.store.models import PlannedMessage
from tests.support.databases import drop_template, postgres_database, sqlite_database

NOW = datetime(2026, 12, 1, 14, 0, tzinfo=UTC)
LEASE = timedelta(minutes=2)


def fill(factory: object, count: int, round_: str) -> None:
    rows: list[dict[str, Any]] = [
        {
            "id": str(uuid.uuid4()),
            "key": f"appointment-reminder:Appointment/eA{n:07d}:P1D:{round_}",
            "rule": "appointment-reminder",
            "purpose": "appointment-reminder",
            "patient_ref": f"Patient/eP{n:07d}",
            "about": [f"Appointment/eA{n:07d}"],
            "send_at": NOW - timedelta(seconds=n % 3600),
            "status": "planned",
            "template": "appointment_reminder",
            "language": "es" if n % 4 == 0 else "en",
            "variables": {},
            "sensitive": False,
            "trace": {},
            "attempts": 0,
            "communication_status": "none",
            "created_at": NOW,
            "updated_at": NOW,
        }
        for n in range(count)
    ]
    with transaction(factory) as session:  # type: ignore[arg-type]
        for start in range(0, count, 5000):
            session.execute(insert(PlannedMessage), rows[start : start + 5000])


def claim_one_by_one(factory: object, per_tick: int) -> int:
    """The previous dispatcher: candidates, then one conditional UPDATE each."""
    claimed = 0
    while True:
        with transaction(factory) as session:  # type: ignore[arg-type]
            ids = list(
                session.scalars(
                    select(PlannedMessage.id)
                    .where(PlannedMessage.status == "planned", PlannedMessage.send_at <= NOW)
                    .order_by(PlannedMessage.send_at)
                    .limit(per_tick)
                    .with_for_update(skip_locked=True)
                )
            )
            lifecycle = MessageLifecycle(session)
            claimed += sum(lifecycle.claim(message_id, NOW, LEASE) for message_id in ids)
        if not ids:
            return claimed


def claim_in_batches(factory: object, per_tick: int) -> int:
    claimed = 0
    while True:
        with transaction(factory) as session:  # type: ignore[arg-type]
            ids = MessageLifecycle(session).claim_batch(NOW, LEASE, limit=per_tick)
        claimed += len(ids)
        if not ids:
            return claimed


def run(database_url: str, count: int, per_tick: int, batch: int) -> None:
    factory = make_session_factory(make_engine(database_url))
    fill(factory, count, "one-by-one")
    started = time.perf_counter()
    old = claim_one_by_one(factory, per_tick)
    old_seconds = time.perf_counter() - started
    # A second set of due rows next to the claimed (queued, leased) first set.
    fill(factory, count, "batch")
    started = time.perf_counter()
    new = claim_in_batches(factory, batch)
    new_seconds = time.perf_counter() - started
    assert old == new == count, (old, new, count)
    print(f"database:              {database_url.split(':')[0]}")
    print(f"due messages:          {count:,}")
    print(
        f"one UPDATE per message ({per_tick}/tx): {old / old_seconds:,.0f} msg/s "
        f"({old_seconds:.1f} s)"
    )
    print(
        f"claim_batch ({batch}/statement):      {new / new_seconds:,.0f} msg/s "
        f"({new_seconds:.1f} s)"
    )
    print(
        f"ratio batch / one-by-one:        {old_seconds / new_seconds:.1f}x  (goal: >= 2,000 msg/s)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="postgresql")
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--per-tick", type=int, default=500, help="old dispatcher's limit")
    parser.add_argument("--batch", type=int, default=2000, help="claim_batch limit")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.database == "sqlite":
            with sqlite_database(Path(tmp)) as url:
                run(url, args.messages, args.per_tick, args.batch)
        else:
            try:
                with postgres_database() as url:
                    run(url, args.messages, args.per_tick, args.batch)
            finally:
                drop_template()


if __name__ == "__main__":
    main()
