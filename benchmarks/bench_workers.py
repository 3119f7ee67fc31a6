"""1 vs 2 worker processes: sustained throughput, measured in one run, and what went wrong.

For each worker count a fresh stack (``tests/e2e/harness.py``: PostgreSQL, Redis, the API,
the development EHR answering every FHIR request after ``--ehr-latency`` seconds) gets
``--events`` due-now Appointments booked faster than one worker keeps up with. Throughput
is events finished (Communication created) per second from the first booking to the last
Communication. The workers are separate ``fhir-bridge worker --concurrency 1`` roles (the
first one runs the scheduler), so two of them contend as two deployments would.

Counted and printed per run, never hidden: unfinished events, worker log errors
(tracebacks, ERROR lines), PostgreSQL deadlocks and duplicate-key errors (as the workers
log them), notifications still pending or given up 10 s after arrival (stuck), event
gaps the workers saw, and ``Subscription`` operations (``$events``/``$status``) they
called on the EHR. Also printed: how busy the whole machine was from the first booking to
the last check (``/proc/stat``, every process, other engineers' included, in cores of the
machine's total) and the CPU the stack's own processes (API, EHR, workers) used per event:
when the machine is near all its cores the ratio measures CPU starvation, not the workers.

``--runs N`` repeats the 1-then-2 pair N times and prints the median ratio (one pair
varied 1.33x to 1.70x back to back on an idle machine).

    .venv/bin/python benchmarks/bench_workers.py [--events 200] [--rate 60] [--drain 90]
        [--runs 1]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_latency import OFFSET, Booking, book_open_loop, latencies, warm_up

from tests.e2e.harness import Stack, running_stack

GOAL_RATIO = 1.6
STUCK_AFTER_SECONDS = 10  # the harness's lease (8 s) and a relay tick


@dataclass
class Result:
    workers: int
    done: int
    seconds: float
    errors: int
    deadlocks: int
    duplicate_keys: int
    stuck: int
    gaps: int
    subscription_operations: int
    machine_cores_busy: float
    stack_cpu_ms_per_event: float

    @property
    def rate(self) -> float:
        return self.done / self.seconds if self.seconds > 0 else 0.0


def _throughput_window(booked: dict[str, Booking]) -> float:
    finished = [b.communication for b in booked.values() if b.communication is not None]
    if not finished:
        return 0.0
    first = min(b.booked for b in booked.values())
    return (max(finished) - first).total_seconds()


def _stuck(stack: Stack) -> int:
    """Notifications still unfinished (pending, or given up) more than a lease after arrival."""
    with psycopg.connect(stack.database_url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM inbox_notification WHERE status IN ('pending', 'failed')"
            " AND received_at < now() - make_interval(secs => %s)",
            (STUCK_AFTER_SECONDS,),
        ).fetchone()
    return int(row[0]) if row else 0


def machine_busy_seconds() -> float:
    """CPU seconds every process on the machine spent busy so far (``/proc/stat``)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def stack_cpu_seconds() -> float:
    """User + system CPU seconds of this benchmark's child processes (the stack) so far."""
    tick = os.sysconf("SC_CLK_TCK")
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # gone meanwhile
            continue
        parents[int(entry.name)] = int(fields[1])
        times[int(entry.name)] = (int(fields[11]) + int(fields[12])) / tick
    ours = {os.getpid()}
    grown = True
    while grown:
        found = {pid for pid, parent in parents.items() if parent in ours} - ours
        grown = bool(found)
        ours |= found
    ours.discard(os.getpid())
    return sum(times[pid] for pid in ours)


def run(workers: int, events: int, rate: float, drain: float, ehr_latency: float) -> Result:
    with (
        tempfile.TemporaryDirectory(prefix="bench-workers-") as workdir,
        running_stack(Path(workdir), offsets=[OFFSET]) as stack,
    ):
        stack.ehr.set_chaos(latency=ehr_latency)
        for n in range(workers):
            stack.bridge.start_worker(concurrency=1, beat=n == 0)
        warm_up(stack)
        before = stack.ehr.stats()["requests_by_type_and_interaction"]
        machine_before, stack_before, wall_before = (
            machine_busy_seconds(),
            stack_cpu_seconds(),
            time.monotonic(),
        )
        booked = book_open_loop(stack, rate, events, f"w{workers}")
        latencies(stack, booked, drain)
        wall = time.monotonic() - wall_before
        machine = machine_busy_seconds() - machine_before
        stack_cpu = stack_cpu_seconds() - stack_before
        after = stack.ehr.stats()["requests_by_type_and_interaction"]
        key = "Subscription.operation"
        logs = stack.bridge.all_log_text()
        return Result(
            workers=workers,
            done=sum(1 for b in booked.values() if b.communication is not None),
            seconds=_throughput_window(booked),
            errors=logs.count("Traceback") + logs.count(" ERROR "),
            deadlocks=logs.lower().count("deadlock detected"),
            duplicate_keys=logs.lower().count("duplicate key value"),
            stuck=_stuck(stack),
            gaps=logs.count("event gap detected"),
            subscription_operations=after.get(key, 0) - before.get(key, 0),
            machine_cores_busy=machine / wall,
            stack_cpu_ms_per_event=stack_cpu * 1000 / events,
        )


def main() -> None:
    """One run per worker count on a fresh stack; prints each and the ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200, help="events per run")
    parser.add_argument("--rate", type=float, default=60.0, help="booking rate, events/s")
    parser.add_argument("--drain", type=float, default=90.0, help="seconds to wait at the end")
    parser.add_argument("--ehr-latency", type=float, default=0.02, help="seconds per request")
    parser.add_argument("--runs", type=int, default=1, help="1-then-2 pairs; median ratio")
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    ratios = []
    for _ in range(args.runs):
        pair = [run(n, args.events, args.rate, args.drain, args.ehr_latency) for n in (1, 2)]
        for r in pair:
            print(
                f"{r.workers} worker process(es): {r.done}/{args.events} done in"
                f" {r.seconds:.1f} s = {r.rate:.1f} events/s; errors {r.errors}, deadlocks"
                f" {r.deadlocks}, duplicate keys {r.duplicate_keys}, stuck notifications"
                f" {r.stuck}, gaps {r.gaps}, $events/$status calls {r.subscription_operations};"
                f" machine busy {r.machine_cores_busy:.2f} of {cores} cores,"
                f" stack CPU {r.stack_cpu_ms_per_event:.0f} ms/event"
            )
        one, two = pair
        ratios.append(two.rate / one.rate if one.rate else 0.0)
        print(f"2 vs 1 worker processes: {ratios[-1]:.2f}x", flush=True)
    print(
        f"median of {args.runs} run(s): {statistics.median(ratios):.2f}x"
        f"   goal >= {GOAL_RATIO}x with 0 errors"
    )
    print(f"load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
