"""Fault: the broker (Redis) dies with a task in flight and comes back empty, three times.

The database is the record and Celery only a wake-up call, so a Redis outage may delay
work but never lose, double or stop it: the Celery worker rides every outage out as the
same process (not a replacement its supervisor started, see ``fhir_bridge.broker_shim``),
and the relay re-enqueues from the database once Redis is back.
"""

from __future__ import annotations

import queue
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.e2e.fixtures import appointment, patient
from tests.e2e.harness import Stack, running_stack, wait_for
from tests.support.bridge import free_port

pytestmark = pytest.mark.integration

OUTAGES = 3
OUTAGE_SECONDS = 8


class PrivateRedis:
    """A redis-server of our own on a free port, without persistence (restarts empty)."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--bind", "127.0.0.1",
                "--port", str(self.port),
                "--save", "",
                "--appendonly", "no",
                "--dir", str(self.workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        client = redis.Redis(host="127.0.0.1", port=self.port)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if client.ping():
                    return
            except redis.ConnectionError:
                time.sleep(0.1)
        raise AssertionError("private redis-server did not start")

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.kill()


@contextmanager
def private_redis(workdir: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(workdir)
    server.start()
    try:
        yield server
    finally:
        server.stop()


class HeldSmtp:
    """Holds each email in the SMTP DATA phase until the test releases it: a task in flight."""

    def __init__(self, stack: Stack) -> None:
        self._held: queue.Queue[threading.Event] = queue.Queue()
        self._record = stack.smtp.record
        stack.smtp.record = self._held_record  # type: ignore[method-assign]

    def _held_record(self, message: EmailMessage, envelope: Any) -> None:
        release = threading.Event()
        self._held.put(release)
        release.wait(timeout=30)
        self._record(message, envelope)

    def next_in_flight(self, timeout: float) -> threading.Event | None:
        """The release of the next email to reach the server (None if none came)."""
        try:
            return self._held.get(timeout=timeout)
        except queue.Empty:
            return None


def celery_process(role: subprocess.Popen[bytes]) -> int:
    """The pid of the Celery worker the ``worker`` role supervises (its only child)."""
    children = subprocess.run(
        ["pgrep", "-P", str(role.pid)], capture_output=True, text=True, check=False
    ).stdout.split()
    assert len(children) == 1, children
    return int(children[0])


def _book(stack: Stack, n: int) -> tuple[str, str]:
    email = f"broker.patient{n}@example.net"
    created = stack.ehr.create(patient(f"MRN-51{n:02d}", "Ana", "Lopez", email))
    start = datetime.now(UTC) + timedelta(hours=1, seconds=3)
    stack.ehr.create(appointment(created["id"], start))
    return created["id"], email


def test_redis_outages_mid_task_neither_replace_the_worker_nor_lose_or_double_a_message(
    tmp_path: Path,
) -> None:
    with (
        private_redis(tmp_path) as broker,
        running_stack(
            tmp_path, offsets=["PT1H"], extra_env={"FHIR_BRIDGE_BROKER_URL": broker.url}
        ) as stack,
    ):
        held = HeldSmtp(stack)
        worker = stack.bridge.start_worker(beat=False)
        scheduler = stack.bridge.start_scheduler()
        celery = None
        booked = []
        for outage in range(OUTAGES):
            # A reminder for a new booking reaches the SMTP server only once the worker
            # consumes again (from the empty Redis, after the previous outage).
            booked.append(_book(stack, outage))
            release = held.next_in_flight(timeout=60)
            assert release is not None, f"no delivery in flight before outage {outage + 1}\n" + (
                stack.bridge.logs()
            )
            celery = celery or celery_process(worker)
            broker.kill()
            time.sleep(1)
            release.set()  # the send finishes while the broker is down
            time.sleep(OUTAGE_SECONDS - 1)
            broker.start()  # empty: no persistence
            assert celery_process(worker) == celery, (
                f"a new Celery worker after outage {outage + 1}"
            )

        wait_for(
            lambda: all(
                any(c["status"] == "completed" for c in stack.communications(patient_id))
                for patient_id, _ in booked
            ),
            timeout=60,
            what="a completed Communication for every reminder after the outages",
            logs=stack.bridge.logs,
        )
        stack.ehr.flush()

        assert worker.poll() is None, "the worker role exited\n" + stack.bridge.logs()
        assert celery_process(worker) == celery, "the Celery worker was replaced\n" + (
            stack.bridge.logs()
        )
        assert scheduler.poll() is None, "the scheduler exited\n" + stack.bridge.logs()
        per_address = Counter(str(m["To"]) for m in stack.smtp.messages)
        for patient_id, email in booked:
            assert per_address[email] == 1, (email, per_address)
            assert len(stack.communications(patient_id)) == 1
