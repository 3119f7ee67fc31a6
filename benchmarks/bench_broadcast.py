"""A broadcast to 50,000 patients planned and queued (issue #14, goal < 60 s).

The audience (50,000 patients with an appointment at the closed place tomorrow, half in
Spanish) is handed to ``campaigns.service.run`` as the EHR search would return it (the
EHR is not what is measured); the run then plans every message with the pure rules, bulk
inserts them in batches of 1,000, claims the due ones and enqueues one ``deliver`` task
each on the real Redis broker (``--broker``; ``none`` counts instead of enqueuing).
Prints the wall time next to the goal. Sending is then paced by the shared SMS limiter.

    .venv/bin/python benchmarks/bench_broadcast.py --database postgresql [--patients 50000]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fhir_bridge.campaigns import service
from fhir_bridge.campaigns.audience import AudienceData
from fhir_bridge.runtime import Runtime
from fhir_bridge.settings import load_settings
from tests.conftest import NOTIFICATION_SECRET
from tests.support.databases import drop_template, postgres_database, sqlite_database

NOW = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)
PLACE = "Location/loc-eastside"


def audience(count: int) -> AudienceData:
    data = AudienceData()
    start = datetime(2026, 12, 2, 14, 0, tzinfo=UTC)
    for n in range(count):
        ref = f"Patient/p{n}"
        language = "es" if n % 2 else "en"
        data.patients[ref] = {
            "resourceType": "Patient",
            "id": f"p{n}",
            "birthDate": "1970-01-01",
            "telecom": [{"system": "phone", "value": f"+1617555{n:04d}"[:12], "use": "mobile"}],
            "communication": [{"language": {"coding": [{"code": language}]}}],
        }
        data.resources[ref] = [
            {
                "resourceType": "Appointment",
                "id": f"a{n}",
                "status": "booked",
                "start": (start + timedelta(minutes=n % 480)).isoformat(),
                "participant": [
                    {"actor": {"reference": ref}},
                    {"actor": {"reference": PLACE}},
                ],
            }
        ]
    return data


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database", choices=("postgresql", "sqlite"), default="postgresql")
    parser.add_argument("--patients", type=int, default=50_000)
    parser.add_argument("--broker", default="redis://127.0.0.1:6379/15")
    args = parser.parse_args()
    data = audience(args.patients)
    queue = f"bench-broadcast-{os.getpid()}"
    # The Celery app reads the process settings: its own queue on the given broker.
    os.environ["FHIR_BRIDGE_BROKER_URL"] = args.broker
    os.environ["FHIR_BRIDGE_QUEUE_NAME"] = queue
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["FHIR_BRIDGE_DATA_DIR"] = tmp
        context = (
            postgres_database() if args.database == "postgresql" else sqlite_database(Path(tmp))
        )
        with context as url:
            rt = Runtime(
                settings=load_settings(
                    database_url=url,
                    notification_secret=NOTIFICATION_SECRET,
                    broker_url=args.broker if args.broker != "none" else "redis://127.0.0.1:1/0",
                    data_dir=Path(tmp),
                    outbox_dir=Path(tmp) / "outbox",
                    ehr_base_url="http://127.0.0.1:9/fhir",  # never called: fetch is replaced
                    ehr_auth="static",
                    ehr_static_token="bench",
                )
            )
            rt.clock = lambda: NOW
            service.fetch = lambda _ehr, _definition, _now: data  # type: ignore[assignment]
            by = "Practitioner/pr-ana-ortiz"
            campaign_id = service.draft(
                rt,
                service.Draft(
                    name="closure",
                    kind="broadcast",
                    audience=service.broadcast_audience(
                        PLACE, NOW + timedelta(hours=12), NOW + timedelta(hours=36)
                    ),
                    by=by,
                    templates=("closure",),
                    priority="alert",
                ),
            )
            service.approve(rt, campaign_id, "Practitioner/pr-ben-cole")
            counted: list[Any] = []
            enqueue = counted.extend if args.broker == "none" else None
            began = time.perf_counter()
            result = service.run(rt, campaign_id, enqueue=enqueue)
            elapsed = time.perf_counter() - began
            rt.engine.dispose()
    drop_template()
    if args.broker.startswith("redis"):
        import redis

        broker = redis.Redis.from_url(args.broker)
        left = [key for key in broker.scan_iter(f"{queue}*")]
        if left:
            broker.delete(*left)  # the tasks this run queued: nobody consumes them
    print(
        f"broadcast to {result.audience:,} patients ({args.database}, broker {args.broker}): "
        f"{result.planned:,} planned, {result.enqueued:,} queued in {elapsed:.1f} s "
        f"(goal < 60 s; {result.planned / elapsed:,.0f} messages/s)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
