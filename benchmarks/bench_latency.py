"""Due-now reminders end to end: Appointment booked in the EHR → Communication created.

Open loop at fixed rates: Appointments whose only reminder is due at once are booked in
the development EHR on a fixed schedule (the schedule does not wait for fhir-bridge), the
EHR notifies the API (PostgreSQL, Redis, one worker process with its scheduler), and each
event's latency is the EHR's own clock from the Appointment's ``meta.lastUpdated`` to its
Communication's. Percentiles are exact over every sample; events with no Communication
when the run's drain time ends are counted as unfinished, never dropped.

Reuses the end-to-end harness (``tests/e2e/harness.py``). Prints p50/p95/p99 next to the
goal of issue #10 (p50 < 300 ms, p99 < 1 s at 20 events/s).

    .venv/bin/python benchmarks/bench_latency.py [--rates 20,100] [--events 200] [--drain 60]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.e2e.fixtures import appointment, patient
from tests.e2e.harness import Stack, running_stack

OFFSET = "PT1H"
# The reminder is due one hour before the start: a start just under an hour away is due now.
LEAD = timedelta(minutes=59, seconds=30)
GOAL_P50_MS, GOAL_P99_MS = 300.0, 1000.0
MAX_EVENTS = 1000  # the development EHR's largest search page


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, round(fraction * len(ordered) + 0.5) - 1))
    return ordered[index]


def _book_open_loop(stack: Stack, rate: float, events: int, tag: str) -> dict[str, datetime]:
    """Book ``events`` Appointments at ``rate`` per second; returns booked time by patient id."""
    booked: dict[str, datetime] = {}
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
        booked[created_patient["id"]] = _instant(created["meta"]["lastUpdated"])
    return booked


def _latencies(stack: Stack, booked: dict[str, datetime], drain: float) -> list[float]:
    deadline = time.monotonic() + drain
    done: dict[str, float] = {}
    while time.monotonic() < deadline and len(done) < len(booked):
        bundle = stack.ehr.search("Communication", _count="1000")
        for entry in bundle.get("entry", []):
            resource = entry["resource"]
            patient_id = resource.get("subject", {}).get("reference", "").removeprefix("Patient/")
            if patient_id in booked and patient_id not in done:
                created = _instant(resource["meta"]["lastUpdated"])
                done[patient_id] = (created - booked[patient_id]).total_seconds() * 1000
        time.sleep(0.5)
    return list(done.values())


def run(rate: float, events: int, drain: float) -> None:
    with (
        tempfile.TemporaryDirectory(prefix="bench-latency-") as workdir,
        running_stack(Path(workdir), offsets=[OFFSET]) as stack,
    ):
        stack.bridge.start_worker()
        booked = _book_open_loop(stack, rate, events, f"{int(rate)}")
        samples = _latencies(stack, booked, drain)
    print(
        f"rate {rate:g} events/s, {events} events: {len(samples)} done,"
        f" {events - len(samples)} unfinished after {drain:g} s of drain"
    )
    if not samples:
        return
    p50, p95, p99 = (_percentile(samples, q) for q in (0.50, 0.95, 0.99))
    print(f"  p50 {p50:8.0f} ms   goal < {GOAL_P50_MS:.0f} ms")
    print(f"  p95 {p95:8.0f} ms")
    print(f"  p99 {p99:8.0f} ms   goal < {GOAL_P99_MS:.0f} ms")
    print(f"  mean {statistics.fmean(samples):7.0f} ms, max {max(samples):.0f} ms")


def main() -> None:
    """Run each rate on a fresh stack and print its percentiles."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default="20,100", help="events per second, comma-separated")
    parser.add_argument("--events", type=int, default=200, help="events per rate")
    parser.add_argument("--drain", type=float, default=60.0, help="seconds to wait at the end")
    args = parser.parse_args()
    if not 0 < args.events <= MAX_EVENTS:
        parser.error(f"--events must be between 1 and {MAX_EVENTS} (one search page)")
    for rate in (float(r) for r in args.rates.split(",")):
        run(rate, args.events, args.drain)


if __name__ == "__main__":
    main()
