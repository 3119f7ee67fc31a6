"""Group commit: concurrent notifications stored in one transaction, off the event loop.

Request handlers ``await`` :meth:`GroupCommitWriter.store` with a checked
:class:`Notification`. The writer is an asyncio task on the server's event loop: it takes
everything waiting (up to ``max_batch``) and hands the batch to a database thread,
which stores it with one read of the Subscriptions and one ``INSERT … ON CONFLICT DO
NOTHING RETURNING`` and commits once; back on the loop, each request's future gets its own
outcome: stored, duplicate, unknown Subscription or mismatched one. One thread hop per
batch, not per request. On SQLite a commit is an fsync, so one commit for many requests is
most of the speed-up; on PostgreSQL it saves round trips.

If the batch fails because the database is unreachable or locked, every request in it gets
that error (the API answers 503 + Retry-After; nothing was stored, a retry is safe). Any
other failure is retried one notification at a time, so one bad row never decides another
request's answer. A request whose client went away before its batch started is dropped
unstored.

Each database thread keeps one connection while busy (no pool pre-ping per request) and
gives it back after a short idle time; on PostgreSQL two batches commit at once. After
each commit the new ids go to a :class:`WakeUps` thread, which wakes the worker with one
task for everything that accumulated: the broker is never on a request's path, and a
broker outage clears ``enqueued_at`` so the relay takes those rows.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
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
    ) -> None:
        self._wake_ups = wake_ups
        self._max_batch = max_batch
        self._waiting: list[tuple[Notification, asyncio.Future[Accepted]]] = []
        self._draining: set[asyncio.Task[None]] = set()
        # SQLite has one writer at a time; PostgreSQL commits two batches at once (one
        # waits for its WAL flush while the other is built), rows in dedupe-key order.
        lanes = 2 if engine.dialect.name == "postgresql" else 1
        self._idle_lanes = [_Lane(engine, clock, idle_seconds) for _ in range(lanes)]

    async def store(self, note: Notification) -> Accepted:
        """Store ``note`` with whatever else is waiting; returns once it is durable.

        Raises :class:`NotAuthenticated` / :class:`InvalidNotification` from the batch, or
        the database error when it could not be stored.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Accepted] = loop.create_future()
        self._waiting.append((note, future))
        if self._idle_lanes:
            task = loop.create_task(self._drain(self._idle_lanes.pop()))
            self._draining.add(task)  # a running task must stay referenced
            task.add_done_callback(self._draining.discard)
        return await future

    async def _drain(self, lane: _Lane) -> None:
        lane.busy()
        try:
            while self._waiting:
                taken = self._waiting[: self._max_batch]
                del self._waiting[: self._max_batch]
                batch = [(note, future) for note, future in taken if not future.done()]
                if batch:
                    outcomes = await lane.write([note for note, _ in batch])
                    self._answer(batch, outcomes)
        finally:
            lane.idle()
            self._idle_lanes.append(lane)

    def _answer(
        self,
        batch: list[tuple[Notification, asyncio.Future[Accepted]]],
        outcomes: list[Outcome | BaseException],
    ) -> None:
        new_ids: list[int] = []
        for (_, future), outcome in zip(batch, outcomes, strict=True):
            if isinstance(outcome, Accepted):
                if outcome.inbox_id is not None:
                    new_ids.append(outcome.inbox_id)
                if not future.done():
                    future.set_result(outcome)
            elif not future.done():
                future.set_exception(outcome)
        self._wake_ups.add(new_ids)


class _Lane:
    """One database thread with its own connection, kept while busy."""

    def __init__(self, engine: Engine, clock: Callable[[], datetime], idle_seconds: float) -> None:
        self._engine = engine
        self._clock = clock
        self._idle = idle_seconds
        self._executor = ThreadPoolExecutor(1, "fhir-bridge-ingest-writer")
        self._connection: Connection | None = None  # used only in the executor's thread
        self._idle_timer: asyncio.TimerHandle | None = None

    def busy(self) -> None:
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None

    def idle(self) -> None:
        """Give the connection back (in the thread that uses it) after a quiet while."""
        self._idle_timer = asyncio.get_running_loop().call_later(
            self._idle, self._executor.submit, self._release
        )

    async def write(self, notes: list[Notification]) -> list[Outcome | BaseException]:
        return await asyncio.get_running_loop().run_in_executor(self._executor, self._write, notes)

    def _write(self, notes: list[Notification]) -> list[Outcome | BaseException]:
        """In the database thread: one transaction for the batch (see the module docstring)."""
        try:
            return list(self._store(notes))
        except Exception as exc:
            if _unavailable(exc) or len(notes) == 1:
                return [exc] * len(notes)
            log.warning(
                "group commit failed; storing one at a time",
                extra={"error": type(exc).__name__, "count": len(notes)},
            )
            return [outcome for note in notes for outcome in self._write([note])]

    def _store(self, notes: list[Notification]) -> list[Outcome]:
        if self._connection is None or self._connection.closed:
            self._connection = self._engine.connect()
        try:
            with self._connection.begin():
                return store_notifications(self._connection, notes, enqueued_at=self._clock())
        except DBAPIError:
            self._release()  # a broken or locked connection: a fresh one next time
            raise

    def _release(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            try:
                connection.close()
            except Exception as exc:  # closing a dead connection may fail; it is gone either way
                log.debug("closing the writer's connection failed", extra={"error": str(exc)})
