"""Group commit: one writer thread stores concurrent notifications in one transaction.

Request handlers :meth:`GroupCommitWriter.submit` a checked :class:`Notification` and wait
for its future. The writer takes everything waiting (up to ``max_batch``), stores it with
one read of the Subscriptions and one ``INSERT … ON CONFLICT DO NOTHING RETURNING``,
commits once, and only then resolves each request's future with its own outcome: stored,
duplicate, unknown Subscription or mismatched one. On SQLite a commit is an fsync, so one
commit for many requests is most of the speed-up; on PostgreSQL it saves round trips.

If the batch fails because the database is unreachable or locked, every request in it gets
that error (the API answers 503 + Retry-After; nothing was stored, a retry is safe). Any
other failure is retried one notification at a time, so one bad row never decides another
request's answer.

The writer keeps one connection while busy (no pool pre-ping per request) and gives it
back after a short idle time; its thread ends when idle and starts again on demand.
After each commit the new ids go to a :class:`WakeUps` thread, which wakes the worker
with one task for everything that accumulated: the broker is never on a request's path,
and a broker outage clears ``enqueued_at`` so the relay takes those rows.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from datetime import datetime

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError

from fhir_bridge.ingest.service import Accepted, Notification, Outcome, store_notifications

log = logging.getLogger(__name__)

Wake = Callable[[list[int]], bool]
"""Hand inbox ids to the worker; ``False`` when the broker did not take them."""


def _unavailable(exc: BaseException) -> bool:
    from fhir_bridge.api.app import database_unavailable

    return database_unavailable(exc)


class WakeUps:
    """Coalesces inbox ids and wakes the worker once per round, off the request path."""

    def __init__(
        self, wake: Wake, on_lost: Callable[[list[int]], None], *, every_seconds: float = 0.02
    ) -> None:
        self._wake = wake
        self._on_lost = on_lost
        # At most one wake-up per interval: a Celery publish costs milliseconds of CPU (and
        # the GIL) in the API process; under load one task carries many notifications.
        self._every = every_seconds
        self._ids: list[int] = []
        self._ready = threading.Condition()
        self._thread: threading.Thread | None = None

    def add(self, ids: Sequence[int]) -> None:
        if not ids:
            return
        with self._ready:
            self._ids.extend(ids)
            self._ready.notify()
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="fhir-bridge-wakeups", daemon=True
                )
                self._thread.start()

    def _run(self) -> None:
        while True:
            with self._ready:
                if not self._ids:
                    self._ready.wait(timeout=5.0)
                if not self._ids:
                    self._thread = None
                    return
                ids, self._ids = self._ids, []
            started = time.monotonic()
            try:
                sent = self._wake(ids)
            except Exception:  # the wake callable must not raise; never lose the thread
                log.exception("waking the worker failed")
                sent = False
            if not sent:
                try:
                    self._on_lost(ids)
                except Exception as exc:  # the rows keep enqueued_at: relayed after a lease
                    log.warning(
                        "could not hand lost wake-ups to the relay",
                        extra={"error": type(exc).__name__, "count": len(ids)},
                    )
            time.sleep(max(0.0, self._every - (time.monotonic() - started)))


class GroupCommitWriter:
    """The one writer of inbox rows in an API process (see the module docstring)."""

    def __init__(
        self,
        engine: Engine,
        wake_ups: WakeUps,
        clock: Callable[[], datetime],
        *,
        max_batch: int = 256,
        idle_seconds: float = 0.5,
        stop_after_seconds: float = 10.0,
    ) -> None:
        self._engine = engine
        self._wake_ups = wake_ups
        self._clock = clock
        self._max_batch = max_batch
        self._idle = idle_seconds
        self._stop_after = stop_after_seconds
        self._queue: queue.SimpleQueue[tuple[Notification, Future[Accepted]]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._connection: Connection | None = None

    def submit(self, note: Notification) -> Future[Accepted]:
        """Queue a notification; the future resolves once it is durable (or refused)."""
        future: Future[Accepted] = Future()
        with self._lock:
            self._queue.put((note, future))
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="fhir-bridge-ingest-writer", daemon=True
                )
                self._thread.start()
        return future

    def _run(self) -> None:
        idle_for = 0.0
        while True:
            try:
                first = self._queue.get(timeout=self._idle)
            except queue.Empty:
                self._release()
                idle_for += self._idle
                if idle_for >= self._stop_after:
                    with self._lock:
                        if self._queue.empty():
                            self._thread = None
                            return
                continue
            idle_for = 0.0
            batch = [first]
            while len(batch) < self._max_batch:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            # A request whose client went away before we started is dropped unstored.
            live = [(n, f) for n, f in batch if f.set_running_or_notify_cancel()]
            if live:
                self._write(live)

    def _write(self, batch: list[tuple[Notification, Future[Accepted]]]) -> None:
        try:
            outcomes = self._store([note for note, _ in batch])
        except Exception as exc:
            if _unavailable(exc) or len(batch) == 1:
                for _, future in batch:
                    future.set_exception(exc)
                return
            log.warning(
                "group commit failed; storing one at a time",
                extra={"error": type(exc).__name__, "count": len(batch)},
            )
            for item in batch:
                self._write([item])
            return
        new_ids = [
            o.inbox_id for o in outcomes if isinstance(o, Accepted) and o.inbox_id is not None
        ]
        for (_, future), outcome in zip(batch, outcomes, strict=True):
            if isinstance(outcome, Accepted):
                future.set_result(outcome)
            else:
                future.set_exception(outcome)
        self._wake_ups.add(new_ids)

    def _store(self, notes: list[Notification]) -> list[Outcome]:
        connection = self._connect()
        try:
            with connection.begin():
                return store_notifications(connection, notes, enqueued_at=self._clock())
        except DBAPIError:
            self._release()  # a broken or locked connection: a fresh one next time
            raise

    def _connect(self) -> Connection:
        if self._connection is None or self._connection.closed:
            self._connection = self._engine.connect()
        return self._connection

    def _release(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            try:
                connection.close()
            except Exception as exc:  # closing a dead connection may fail; it is gone either way
                log.debug("closing the writer's connection failed", extra={"error": str(exc)})
