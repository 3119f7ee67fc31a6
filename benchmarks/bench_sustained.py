"""Sustainable rate of one worker process: bookings in, reminders planned, backlog bounded.

A clinic's EHR sends mostly ordinary bookings: an Appointment days ahead whose reminder is
planned now and sent later. For each ``--rates`` value a fresh stack
(``tests/e2e/harness.py``: PostgreSQL, Redis, the API, the development EHR answering
every FHIR request after ``--ehr-latency`` seconds) gets Appointments booked open loop at
that rate for ``--seconds`` (the schedule never waits for fhir-bridge; several booking
threads keep it), and one ``fhir-bridge worker --concurrency 1`` process (with the
scheduler) applies them. An event is finished when its notification is applied and its
reminder planned (the inbox row ``done``, the ``planned_message`` row written).

Printed per rate: events finished per second over the run (first booking → last event
finished), how many were still unfinished when the drain time ended, the p50/p99 of
notification stored → applied (a backlog shows here first), the machine's busy cores and
the stack's CPU per event (API, development EHR, workers; PostgreSQL and Redis not
counted), and the worker processes' own CPU per event with the rate it would allow one
worker process that had a core to itself (the EHR and the database elsewhere, as in a
deployment). A rate is sustained when every event finished, the events were applied at
``KEEPS_UP`` of the offered rate or more, and the p99 stayed under
``SUSTAINED_P99_SECONDS``. The last line also prints the most a run applied per second
(offer more than the worker keeps up with to see its capacity).

    .venv/bin/python benchmarks/bench_sustained.py [--rates 25,50,100] [--seconds 20]
        [--drain 60] [--ehr-latency 0.02]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_latency import WARM_UP_SECONDS, _percentile
from bench_workers import machine_busy_seconds, stack_cpu_seconds

from tests.e2e.fixtures import appointment, patient
from tests.e2e.harness import Stack, running_stack

GOAL_RATE = 100.0
SUSTAINED_P99_SECONDS = 5.0
KEEPS_UP = 0.95
OFFSET = "P1D"  # the reminder goes out a day before: planned now, sent later
AHEAD = timedelta(days=3)
BOOKING_THREADS = 8


@dataclass
class Outcome:
    rate: float
    booked: int
    finished: int
    planned: int
    seconds: float
    p50: float
    p99: float
    cores_busy: float
    stack_cpu_ms: float
    worker_cpu_ms: float

    @property
    def throughput(self) -> float:
        return self.finished / self.seconds if self.seconds > 0 else 0.0

    @property
    def sustained(self) -> bool:
        return (
            self.finished == self.booked
            and self.throughput >= KEEPS_UP * self.rate
            and self.p99 <= SUSTAINED_P99_SECONDS
        )


def worker_cpu_seconds() -> float:
    """User + system CPU seconds of every ``fhir_bridge worker`` process (parent and pool)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # gone meanwhile
            continue
        if b"fhir_bridge worker" in command:
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


def _book(stack: Stack, rate: float, seconds: float, tag: str) -> tuple[int, float]:
    """Book open loop; returns how many and the wall-clock start (epoch seconds)."""
    count = int(rate * seconds)
    patients = [
        stack.ehr.create(patient(f"MRN-{tag}-{n}", "Ana", "Lopez", f"s{tag}{n}@example.net"))
        for n in range(count)
    ]
    begun = time.time()
    started = time.monotonic()

    def book(n: int) -> None:
        delay = started + n / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        stack.ehr.create(appointment(patients[n]["id"], datetime.now(UTC) + AHEAD))

    with ThreadPoolExecutor(BOOKING_THREADS) as pool:
        list(pool.map(book, range(count)))
    return count, begun


def _progress(database_url: str, since: float) -> tuple[int, int, list[float], float | None]:
    """(events finished, reminders planned, stored → applied seconds, last finish epoch)."""
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT extract(epoch FROM received_at), extract(epoch FROM processed_at)"
            " FROM inbox_notification WHERE kind = 'event-notification' AND status = 'done'"
            " AND received_at >= to_timestamp(%s)",
            (since,),
        ).fetchall()
        planned = conn.execute(
            "SELECT count(*) FROM planned_message WHERE created_at >= to_timestamp(%s)", (since,)
        ).fetchone()
    waits = [float(done) - float(stored) for stored, done in rows]
    last = max((float(done) for _, done in rows), default=None)
    return len(rows), int(planned[0]) if planned else 0, waits, last


def _warm_up(stack: Stack) -> None:
    """One booking applied before the clock starts (the worker is up, its token issued)."""
    since = time.time() - 1
    _book(stack, 1.0, 1.0, "warm-up")
    deadline = time.monotonic() + WARM_UP_SECONDS
    while _progress(stack.database_url, since)[0] < 1:
        if time.monotonic() > deadline:
            raise SystemExit(f"the warm-up event was not applied within {WARM_UP_SECONDS:g} s")
        time.sleep(0.2)


def run(rate: float, seconds: float, drain: float, ehr_latency: float) -> Outcome:
    with (
        tempfile.TemporaryDirectory(prefix="bench-sustained-") as workdir,
        running_stack(Path(workdir), offsets=[OFFSET]) as stack,
    ):
        stack.ehr.set_chaos(latency=ehr_latency)
        stack.bridge.start_worker(concurrency=1, beat=True)
        _warm_up(stack)
        machine_before, stack_before, worker_before, wall_before = (
            machine_busy_seconds(),
            stack_cpu_seconds(),
            worker_cpu_seconds(),
            time.monotonic(),
        )
        booked, begun = _book(stack, rate, seconds, f"{int(rate)}")
        deadline = time.monotonic() + drain
        finished, planned, waits, last = _progress(stack.database_url, begun)
        while finished < booked and time.monotonic() < deadline:
            time.sleep(0.5)
            finished, planned, waits, last = _progress(stack.database_url, begun)
        wall = time.monotonic() - wall_before
        machine = machine_busy_seconds() - machine_before
        stack_cpu = stack_cpu_seconds() - stack_before
        worker_cpu = worker_cpu_seconds() - worker_before
    return Outcome(
        rate=rate,
        booked=booked,
        finished=finished,
        planned=planned,
        seconds=(last - begun) if last is not None else 0.0,
        p50=_percentile(waits, 0.50) if waits else 0.0,
        p99=_percentile(waits, 0.99) if waits else 0.0,
        cores_busy=machine / wall,
        stack_cpu_ms=stack_cpu * 1000 / max(booked, 1),
        worker_cpu_ms=worker_cpu * 1000 / max(finished, 1),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default="25,50,100", help="bookings per second, comma-separated")
    parser.add_argument("--seconds", type=float, default=20.0, help="booking time per rate")
    parser.add_argument("--drain", type=float, default=60.0, help="seconds to wait at the end")
    parser.add_argument("--ehr-latency", type=float, default=0.02, help="seconds per request")
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    best = most = 0.0
    for rate in (float(r) for r in args.rates.split(",")):
        out = run(rate, args.seconds, args.drain, args.ehr_latency)
        verdict = "sustained" if out.sustained else "NOT sustained"
        print(
            f"offered {out.rate:g}/s: {out.finished}/{out.booked} applied"
            f" ({out.planned} reminders planned) at {out.throughput:.1f} events/s;"
            f" stored → applied p50 {out.p50:.2f} s, p99 {out.p99:.2f} s — {verdict};"
            f" machine busy {out.cores_busy:.2f} of {cores} cores,"
            f" stack CPU {out.stack_cpu_ms:.0f} ms/event (worker {out.worker_cpu_ms:.1f} ms"
            f" → at most {1000 / out.worker_cpu_ms if out.worker_cpu_ms else 0:.0f} events/s"
            " for a worker process with a core to itself)",
            flush=True,
        )
        most = max(most, out.throughput)
        if out.sustained:
            best = max(best, out.rate)
    print(
        f"sustainable rate, 1 worker process: {best:.0f} events/s   goal >= {GOAL_RATE:.0f}"
        f"   (the most applied in a run: {most:.1f} events/s)"
        f"   (load average {' '.join(f'{v:.2f}' for v in os.getloadavg())})"
    )


if __name__ == "__main__":
    main()
