"""Fault: the broker (Redis) dies with a task in flight and comes back empty.

The database is the record and Celery only a wake-up call, so a Redis outage may delay
work but never lose, double or stop it: the worker rides the outage out as the same
process, and the relay re-enqueues from the database once Redis is back.
"""

from __future__ import annotations

import os
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

OUTAGE_SECONDS = 30


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
    """Holds the first email in the SMTP DATA phase until released: a task in flight."""

    def __init__(self, stack: Stack) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        self._record = stack.smtp.record
        stack.smtp.record = self._held_record  # type: ignore[method-assign]

    def _held_record(self, message: EmailMessage, envelope: Any) -> None:
        if not self.entered.is_set():
            self.entered.set()
            self.release.wait(timeout=20)
        self._record(message, envelope)


def _book(stack: Stack, n: int) -> tuple[str, str]:
    email = f"broker.patient{n}@example.net"
    created = stack.ehr.create(patient(f"MRN-51{n:02d}", "Ana", "Lopez", email))
    start = datetime.now(UTC) + timedelta(hours=1, seconds=6 + n)
    stack.ehr.create(appointment(created["id"], start))
    return created["id"], email


def test_a_redis_outage_mid_task_neither_stops_the_worker_nor_loses_or_doubles_a_message(
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
        booked = [_book(stack, n) for n in range(3)]

        assert held.entered.wait(timeout=60), "no delivery reached the SMTP server\n" + (
            stack.bridge.logs()
        )
        broker.kill()
        time.sleep(1)
        held.release.set()  # the send finishes while the broker is down
        time.sleep(OUTAGE_SECONDS - 1)
        assert worker.poll() is None, "the worker exited during the outage\n" + (
            stack.bridge.logs()
        )
        broker.start()  # empty: no persistence

        wait_for(
            lambda: all(
                any(c["status"] == "completed" for c in stack.communications(patient_id))
                for patient_id, _ in booked
            ),
            timeout=75,
            what="a completed Communication for every reminder after the outage",
            logs=stack.bridge.logs,
        )
        stack.ehr.flush()

        assert worker.poll() is None, "the worker exited\n" + stack.bridge.logs()
        os.kill(worker.pid, 0)  # the same process, alive
        assert scheduler.poll() is None, "the scheduler exited\n" + stack.bridge.logs()
        per_address = Counter(str(m["To"]) for m in stack.smtp.messages)
        for patient_id, email in booked:
            assert per_address[email] == 1, (email, per_address)
            assert len(stack.communications(patient_id)) == 1
