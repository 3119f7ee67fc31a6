"""Due-now reminders end to end: Appointment booked in the EHR → Communication created.

Open loop at fixed rates: Appointments whose only reminder is due at once are booked in
the development EHR on a fixed schedule (the schedule does not wait for fhir-bridge), the
EHR notifies the API (PostgreSQL, Redis, one worker process with its scheduler), and each
event's latency is the EHR's own clock from the Appointment's ``meta.lastUpdated`` to its
Communication's. Percentiles are exact over every sample; events with no Communication
when the run's drain time ends are counted as unfinished, never dropped.

Reuses the end-to-end harness (``tests/e2e/harness.py``). Prints p50/p95/p99 next to the
goal of issue #10 (p50 < 300 ms, p99 < 1 s at 20 events/s), then where the time goes: per
stage, from the rows' own timestamps (every clock is this machine's):

- ``notify``: Appointment booked → its notification stored (the EHR's delivery, the API);
- ``ingest``: notification stored → its message planned (wake-up, queue, worker);
- ``deliver``: message planned → sent (the hand-off to delivery, re-reads, SMTP);
- ``write-back``: sent → Communication created in the EHR.

``--compare-events-operation`` runs every rate twice, on an EHR with ``$events`` and on
one without (where a missed event can only be found by a ``_lastUpdated`` search), with
``--workers`` separate worker processes (``--workers 2``: their events interleave, so
notifications are applied out of order), and prints both next to each other with the
catch-up searches and ``$events`` calls each made: the issue's goal is "the same".

    .venv/bin/python benchmarks/bench_latency.py [--rates 20,100] [--events 200] [--drain 60]
        [--workers 1] [--concurrency 2] [--compare-events-operation]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.e2e.fixtures import appointment, patient
from tests.e2e.harness import Stack, running_stack

OFFSET = "PT1H"
# The reminder is due one hour before the start: a start just under an hour away is due now.
LEAD = timedelta(minutes=59, seconds=30)
GOAL_P50_MS, GOAL_P99_MS = 300.0, 1000.0
MAX_EVENTS = 1000  # the development EHR's largest search page
WARM_UP_SECONDS = 90.0


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, round(fraction * len(ordered) + 0.5) - 1))
    return ordered[index]


STAGES = ("notify", "ingest", "deliver", "write-back")


@dataclass
class Booking:
    appointment_id: str
    booked: datetime
    communication: datetime | None = None


def book_open_loop(stack: Stack, rate: float, events: int, tag: str) -> dict[str, Booking]:
    """Book ``events`` Appointments at ``rate`` per second; returns them by patient id."""
    booked: dict[str, Booking] = {}
    patients = [
        stack.ehr.create(patient(f"MRN-{tag}-{n}", "Ana", "Lopez", f"p{tag}{n}@example.net"))
        for n in range(events)
    ]
    started = time.monotonic()
    for n, created_patient in enumerate(patients):
        delay = started + n / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        start = datetime.now(UTC) + LEAD
        created = stack.ehr.create(appointment(created_patient["id"], start))
        booked[created_patient["id"]] = Booking(
            created["id"], _instant(created["meta"]["lastUpdated"])
        )
    return booked


def latencies(stack: Stack, booked: dict[str, Booking], drain: float) -> list[float]:
    deadline = time.monotonic() + drain
    done: dict[str, float] = {}
    while time.monotonic() < deadline and len(done) < len(booked):
        bundle = stack.ehr.search("Communication", _count="1000")
        for entry in bundle.get("entry", []):
            resource = entry["resource"]
            patient_id = resource.get("subject", {}).get("reference", "").removeprefix("Patient/")
            if patient_id in booked and patient_id not in done:
                booking = booked[patient_id]
                booking.communication = _instant(resource["meta"]["lastUpdated"])
                done[patient_id] = _ms(booking.booked, booking.communication)
        time.sleep(0.5)
    return list(done.values())


def warm_up(stack: Stack, timeout: float = WARM_UP_SECONDS) -> None:
    """One event end to end before the clock starts: the worker is up, its token issued.

    Without it the first events wait for the worker to boot (seconds, more under load)
    and the whole run measures the start-up, not the pipeline.
    """
    warm = book_open_loop(stack, 1.0, 1, "warm-up")
    if len(latencies(stack, warm, timeout)) != 1:
        raise SystemExit(f"the warm-up event did not finish within {timeout:g} s")


def _ms(start: datetime, end: datetime) -> float:
    return (end - start).total_seconds() * 1000


def _stages(database_url: str, booked: dict[str, Booking]) -> dict[str, list[float]]:
    """Per-stage durations of every finished event, from the inbox and message rows."""
    with psycopg.connect(database_url) as conn:
        inbox = conn.execute("SELECT body, received_at FROM inbox_notification").fetchall()
        messages = conn.execute(
            "SELECT patient_ref, created_at, sent_at FROM planned_message"
        ).fetchall()
    stored: dict[str, datetime] = {}
    for body, received_at in inbox:
        text = json.dumps(body)
        for booking in booked.values():
            if f"Appointment/{booking.appointment_id}" in text:
                previous = stored.get(booking.appointment_id)
                stored[booking.appointment_id] = min(received_at, previous or received_at)
    planned = {ref.removeprefix("Patient/"): (created, sent) for ref, created, sent in messages}
    stages: dict[str, list[float]] = {stage: [] for stage in STAGES}
    for patient_id, booking in booked.items():
        received = stored.get(booking.appointment_id)
        created, sent = planned.get(patient_id, (None, None))
        if booking.communication is None or received is None or created is None or sent is None:
            continue
        points = (booking.booked, received, created, sent, booking.communication)
        for stage, start, end in zip(STAGES, points, points[1:], strict=False):
            stages[stage].append(_ms(start, end))
    return stages


def _print_stages(stages: dict[str, list[float]]) -> None:
    print("  where the time goes (per finished event):")
    for stage, samples in stages.items():
        if samples:
            p50, p95 = _percentile(samples, 0.50), _percentile(samples, 0.95)
            print(f"    {stage:<10} p50 {p50:8.0f} ms   p95 {p95:8.0f} ms")


@dataclass
class RunSummary:
    p50: float | None
    p99: float | None
    searches: int
    operations: int


def run(
    rate: float,
    events: int,
    drain: float,
    concurrency: int,
    *,
    workers: int = 1,
    supports_events: bool = True,
) -> RunSummary:
    with (
        tempfile.TemporaryDirectory(prefix="bench-latency-") as workdir,
        running_stack(Path(workdir), offsets=[OFFSET], supports_events=supports_events) as stack,
    ):
        for n in range(workers):
            stack.bridge.start_worker(concurrency=concurrency, beat=n == 0)
        warm_up(stack)
        before = stack.ehr.stats()["requests_by_type_and_interaction"]
        booked = book_open_loop(stack, rate, events, f"{int(rate)}")
        samples = latencies(stack, booked, drain)
        stages = _stages(stack.database_url, booked)
        after = stack.ehr.stats()["requests_by_type_and_interaction"]
    counted = {key: after.get(key, 0) - before.get(key, 0) for key in after}
    # Catch-up searches by fhir-bridge (the benchmark's own Communication polling excluded).
    searches = sum(
        n
        for key, n in counted.items()
        if key.endswith(".search-type") and not key.startswith("Communication.")
    )
    operations = counted.get("Subscription.operation", 0)
    print(
        f"rate {rate:g} events/s, {events} events: {len(samples)} done,"
        f" {events - len(samples)} unfinished after {drain:g} s of drain"
        f" ({workers} worker role(s), --concurrency {concurrency}; EHR"
        f" {'with' if supports_events else 'without'} $events)"
    )
    print(f"  EHR searches {searches}, $events/$status calls {operations} during the run")
    if not samples:
        return RunSummary(None, None, searches, operations)
    p50, p95, p99 = (_percentile(samples, q) for q in (0.50, 0.95, 0.99))
    print(f"  p50 {p50:8.0f} ms   goal < {GOAL_P50_MS:.0f} ms")
    print(f"  p95 {p95:8.0f} ms")
    print(f"  p99 {p99:8.0f} ms   goal < {GOAL_P99_MS:.0f} ms")
    print(f"  mean {statistics.fmean(samples):7.0f} ms, max {max(samples):.0f} ms")
    _print_stages(stages)
    print(f"  load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}", flush=True)
    return RunSummary(p50, p99, searches, operations)


def main() -> None:
    """Run each rate on a fresh stack and print its percentiles."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default="20,100", help="events per second, comma-separated")
    parser.add_argument("--events", type=int, default=200, help="events per rate")
    parser.add_argument("--drain", type=float, default=60.0, help="seconds to wait at the end")
    parser.add_argument("--concurrency", type=int, default=2, help="each worker's processes")
    parser.add_argument("--workers", type=int, default=1, help="separate worker roles")
    parser.add_argument(
        "--compare-events-operation",
        action="store_true",
        help="each rate on an EHR with $events and on one without, side by side",
    )
    args = parser.parse_args()
    if not 0 < args.events <= MAX_EVENTS:
        parser.error(f"--events must be between 1 and {MAX_EVENTS} (one search page)")
    for rate in (float(r) for r in args.rates.split(",")):
        options = (True, False) if args.compare_events_operation else (True,)
        summaries = [
            run(
                rate,
                args.events,
                args.drain,
                args.concurrency,
                workers=args.workers,
                supports_events=supports,
            )
            for supports in options
        ]
        if len(summaries) == 2:
            with_ops, without = summaries
            ratio = (
                f"{without.p50 / with_ops.p50:.2f}x"
                if with_ops.p50 and without.p50 is not None
                else "n/a"
            )
            print(
                f"without $events vs with, {rate:g}/s, {args.workers} worker(s): p50"
                f" {_fmt(without.p50)} vs {_fmt(with_ops.p50)} ({ratio}), p99"
                f" {_fmt(without.p99)} vs {_fmt(with_ops.p99)}; searches {without.searches} vs"
                f" {with_ops.searches}   goal: the same"
            )


def _fmt(ms: float | None) -> str:
    return "unfinished" if ms is None else f"{ms:.0f} ms"


if __name__ == "__main__":
    main()
