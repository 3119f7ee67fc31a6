"""Notification ingest: how many notifications per second fhir-bridge makes durable.

Starts the real API under uvicorn (one process) on SQLite or PostgreSQL with a Redis
broker, then POSTs Backport IG event notifications from several client threads and prints
throughput and latency (each 200 means: inbox row committed, job enqueued).

    .venv/bin/python benchmarks/bench_ingest.py --database sqlite --count 2000
    .venv/bin/python benchmarks/bench_ingest.py --database postgresql --count 2000
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import httpx
import redis

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fhir_bridge.ingest.auth import subscription_token
from fhir_bridge.store.db import make_engine, make_session_factory, transaction
from fhir_bridge.store.models import Subscription
from tests.support.bridge import BridgeProcesses
from tests.support.databases import drop_template, postgres_database, sqlite_database

SECRET = "benchmark-secret"


def notification(number: int) -> bytes:
    status = {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "subscription", "valueReference": {"reference": "Subscription/bench"}},
            {"name": "status", "valueCode": "active"},
            {"name": "type", "valueCode": "event-notification"},
            {"name": "events-since-subscription-start", "valueString": str(number)},
            {
                "name": "notification-event",
                "part": [
                    {"name": "event-number", "valueString": str(number)},
                    {"name": "focus", "valueReference": {"reference": f"Appointment/{number}"}},
                ],
            },
        ],
    }
    bundle = {"resourceType": "Bundle", "type": "history", "entry": [{"resource": status}]}
    return json.dumps(bundle).encode()


def run(database_url: str, workdir: Path, count: int, threads: int) -> None:
    factory = make_session_factory(make_engine(database_url))
    with transaction(factory) as session:
        session.add(
            Subscription(
                id="bench",
                resource_type="Appointment",
                kind="topic",
                payload="id-only",
                criteria="bench",
                endpoint="bench",
                remote_id="bench",
                created_at=datetime.now(UTC),
            )
        )
    queue = f"bench-{uuid.uuid4().hex[:8]}"
    bridge = BridgeProcesses(
        {
            "FHIR_BRIDGE_DATABASE_URL": database_url,
            "FHIR_BRIDGE_BROKER_URL": "redis://127.0.0.1:6379/3",
            "FHIR_BRIDGE_QUEUE_NAME": queue,
            "FHIR_BRIDGE_NOTIFICATION_SECRET": SECRET,
            "FHIR_BRIDGE_LOG_LEVEL": "WARNING",
        },
        workdir,
    )
    bridge.start_api()
    headers = {
        "Authorization": f"Bearer {subscription_token(SECRET, 'bench')}",
        "Content-Type": "application/fhir+json",
    }
    url = f"{bridge.base_url}/notifications/bench"
    latencies: list[float] = []
    try:
        with httpx.Client(timeout=30) as client:

            def post(number: int) -> None:
                started = time.perf_counter()
                response = client.post(url, content=notification(number), headers=headers)
                latencies.append(time.perf_counter() - started)
                assert response.status_code == 200, response.text

            began = time.perf_counter()
            with ThreadPoolExecutor(threads) as pool:
                list(pool.map(post, range(1, count + 1)))
            elapsed = time.perf_counter() - began
    finally:
        bridge.stop()
        redis.Redis.from_url("redis://127.0.0.1:6379/3").delete(queue)
    latencies.sort()
    print(f"database:        {database_url.split(':')[0]}")
    print(f"notifications:   {count} from {threads} client threads")
    print(f"throughput:      {count / elapsed:,.0f} notifications/s (durable before 200)")
    print(f"latency p50:     {statistics.median(latencies) * 1000:.1f} ms")
    print(f"latency p95:     {latencies[int(len(latencies) * 0.95)] * 1000:.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=4)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        if args.database == "sqlite":
            with sqlite_database(workdir) as url:
                run(url, workdir, args.count, args.threads)
        else:
            try:
                with postgres_database() as url:
                    run(url, workdir, args.count, args.threads)
            finally:
                drop_template()


if __name__ == "__main__":
    main()
