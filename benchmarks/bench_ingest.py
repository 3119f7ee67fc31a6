"""Notification ingest: how many notifications per second fhir-bridge makes durable,
next to a bare FastAPI endpoint answering the same JSON (issue #10, goal: ratio ≥ 0.5).

Starts the real API under uvicorn (one process) on SQLite or PostgreSQL with a Redis
broker, and in the same run a bare FastAPI app under the same uvicorn settings that only
parses the body and answers the same OperationOutcome. The same bundled load generator
(asyncio, HTTP/1.1 keep-alive, ``--connections`` connections, default 8) POSTs Backport IG
event notifications to each and prints throughput, latency and the ratio. Each 200 from
fhir-bridge means: the inbox row is committed (the worker is woken after the answer).

    .venv/bin/python benchmarks/bench_ingest.py --database sqlite --count 3000 --runs 3
    .venv/bin/python benchmarks/bench_ingest.py --database postgresql --count 3000 --runs 3

Each run also prints the server process's CPU milliseconds per request, which depends far
less on what else the machine is doing than the rates do, in all and on the event loop's
thread alone (the rest is fhir-bridge's database and wake-up threads: one Python process,
one GIL, so the sum is what bounds the rate). On SQLite it ends with the disk's commit
time (WAL, ``synchronous=FULL``, one fsync each), the floor under every group commit.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import redis
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fhir_bridge.ingest.auth import subscription_token
from fhir_bridge.store.db import make_engine, make_session_factory, transaction
from fhir_bridge.store.models import InboxNotification, Subscription
from tests.support.bridge import BridgeProcesses, free_port
from tests.support.databases import drop_template, postgres_database, sqlite_database

SECRET = "b5c1e0f4a7d2936c8e1f0a4b7d2c5e8f1a3b6c9d2e5f8a1b4c7d0e3f6a9b2c5d"  # benchmark only


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


def bare_app() -> FastAPI:
    """The baseline: read and parse the body, answer the same OperationOutcome, store nothing."""
    app = FastAPI()
    outcome = {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "information", "code": "informational", "diagnostics": "accepted"}],
    }

    @app.post("/notifications/{subscription_id}")
    async def notify(request: Request, subscription_id: str) -> JSONResponse:
        orjson.loads(await request.body())
        return JSONResponse(outcome, media_type="application/fhir+json")

    return app


def start_bare(workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    """The bare app under uvicorn, started the way ``fhir-bridge serve`` starts the API."""
    port = free_port()
    code = (
        "import sys, uvicorn; sys.path.insert(0, sys.argv[1]); "
        "from bench_ingest import bare_app; "
        "uvicorn.run(bare_app(), host='127.0.0.1', port=int(sys.argv[2]), log_config=None)"
    )
    log = (workdir / "bare.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-c", code, str(Path(__file__).parent), str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(f"{url}/docs", timeout=1)
            return process, url
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("bare app did not start")


async def _connection(host: str, port: int, requests: list[bytes], latencies: list[float]) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        for request in requests:
            started = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - started)
            if status != 200:
                raise AssertionError(f"HTTP {status}")
    finally:
        writer.close()


def load(
    base_url: str, path: str, headers: dict[str, str], count: int, connections: int, first: int = 1
) -> Any:
    """POST ``count`` notifications (numbered from ``first``) over ``connections`` connections."""
    host, port = base_url.removeprefix("http://").split(":")
    extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    requests = []
    for number in range(first, first + count):
        body = notification(number)
        requests.append(
            (
                f"POST {path} HTTP/1.1\r\nHost: {host}\r\n{extra}"
                f"Content-Length: {len(body)}\r\n\r\n"
            ).encode()
            + body
        )
    latencies: list[float] = []

    async def everything() -> float:
        began = time.perf_counter()
        await asyncio.gather(
            *(
                _connection(host, int(port), requests[slot::connections], latencies)
                for slot in range(connections)
            )
        )
        return time.perf_counter() - began

    elapsed = asyncio.run(everything())
    latencies.sort()
    return count / elapsed, latencies


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def loop_cpu_seconds(pid: int) -> float:
    """CPU time of the process's main thread, which runs uvicorn's event loop."""
    fields = Path(f"/proc/{pid}/task/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measured(
    pid: int, url: str, headers: dict[str, str], count: int, connections: int, first: int
) -> Any:
    """``load`` plus the server's CPU milliseconds per request (less load-sensitive), in all
    and on the event loop's thread alone (the rest: fhir-bridge's database and wake-up
    threads)."""
    before, loop_before = cpu_seconds(pid), loop_cpu_seconds(pid)
    rate, latencies = load(url, "/notifications/bench", headers, count, connections, first)
    cpu_ms = (cpu_seconds(pid) - before) * 1000 / count
    return rate, latencies, cpu_ms, (loop_cpu_seconds(pid) - loop_before) * 1000 / count


def report(name: str, rate: float, latencies: list[float], cpu_ms: float, loop_ms: float) -> None:
    p50 = statistics.median(latencies) * 1000
    p95 = latencies[int(len(latencies) * 0.95)] * 1000
    print(
        f"{name:<22} {rate:>8,.0f} req/s   p50 {p50:6.1f} ms   p95 {p95:6.1f} ms"
        f"   server CPU {cpu_ms:5.2f} ms/req (event loop {loop_ms:4.2f})"
    )


def sqlite_commit_ms(directory: Path, commits: int = 200) -> float:
    """Median time of one small committed insert in a WAL file with ``synchronous=FULL``
    (SQLite's default, and what the API runs with): each is an fsync, the floor under a
    group commit on this disk."""
    connection = sqlite3.connect(directory / "fsync-probe.db")
    try:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=FULL")
        connection.execute("CREATE TABLE probe (id INTEGER PRIMARY KEY, body TEXT)")
        connection.commit()
        times = []
        for _ in range(commits):
            started = time.perf_counter()
            connection.execute("INSERT INTO probe (body) VALUES (?)", ("x" * 500,))
            connection.commit()
            times.append(time.perf_counter() - started)
        return statistics.median(times) * 1000
    finally:
        connection.close()


def run(
    database_url: str,
    workdir: Path,
    count: int,
    connections: int,
    runs: int,
    log_level: str = "WARNING",
) -> None:
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
            "FHIR_BRIDGE_LOG_LEVEL": log_level,
        },
        workdir,
    )
    headers = {
        "Authorization": f"Bearer {subscription_token(SECRET, 'bench')}",
        "Content-Type": "application/fhir+json",
    }
    bare, bare_url = start_bare(workdir)
    bridge.start_api()
    assert bridge.api is not None
    ratios = []
    try:
        load(bare_url, "/notifications/bench", headers, min(count, 500), connections)  # warm-up
        for run_number in range(1, runs + 1):
            first = (run_number - 1) * count + 1  # new notifications each run, no duplicates
            bare_rate, bare_latencies, bare_cpu, bare_loop = measured(
                bare.pid, bare_url, headers, count, connections, first
            )
            ours_rate, ours_latencies, ours_cpu, ours_loop = measured(
                bridge.api.pid, bridge.base_url, headers, count, connections, first
            )
            ratios.append(ours_rate / bare_rate)
            load_average = ", ".join(f"{v:.1f}" for v in os.getloadavg())
            print(f"run {run_number} (load average {load_average})")
            report("  bare FastAPI", bare_rate, bare_latencies, bare_cpu, bare_loop)
            report("  fhir-bridge (durable)", ours_rate, ours_latencies, ours_cpu, ours_loop)
            print(f"  ratio {ratios[-1]:.2f}")
    finally:
        bare.kill()
        bridge.stop()
        client = redis.Redis.from_url("redis://127.0.0.1:6379/3")
        client.delete(queue, *(f"{queue}.{kind}" for kind in ("ingest", "delivery")))
    with transaction(factory) as session:
        stored = session.query(InboxNotification).count()
    assert stored == count * runs, (stored, count * runs)
    print(f"database:              {database_url.split(':')[0]}")
    if database_url.startswith("sqlite"):
        commit_ms = sqlite_commit_ms(workdir)
        ceiling = connections / commit_ms * 1000  # commits are serial, each takes all waiting
        print(
            f"SQLite commit (fsync):  p50 {commit_ms:.2f} ms on this disk, so at most"
            f" {ceiling:,.0f}/s with {connections} connections"
        )
    print(f"notifications:         {count} per run over {connections} keep-alive connections")
    print(
        f"ratio fhir-bridge / bare: median {statistics.median(ratios):.2f} of {runs} runs"
        f" ({', '.join(f'{r:.2f}' for r in ratios)})  (goal: >= 0.5)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--count", type=int, default=4000)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--runs", type=int, default=1, help="bare/fhir-bridge pairs in a row")
    parser.add_argument(
        "--log-level",
        default="WARNING",
        help="fhir-bridge's FHIR_BRIDGE_LOG_LEVEL (INFO, the service's default, adds its"
        " 'notification accepted' lines; the bare app logs nothing)",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        if args.database == "sqlite":
            with sqlite_database(workdir) as url:
                run(url, workdir, args.count, args.connections, args.runs, args.log_level)
        else:
            try:
                with postgres_database() as url:
                    run(url, workdir, args.count, args.connections, args.runs, args.log_level)
            finally:
                drop_template()


if __name__ == "__main__":
    main()
