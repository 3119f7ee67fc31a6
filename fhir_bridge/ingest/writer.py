"""Group commit: concurrent notifications stored in one transaction, off the event loop.

Request handlers ``await`` :meth:`GroupCommitWriter.store` with a checked
:class:`Notification`, which waits in a queue. A database thread (a *lane*) takes
everything waiting (up to ``max_batch``), stores it with one read of the Subscriptions and
one ``INSERT … ON CONFLICT DO NOTHING RETURNING`` and commits once; each request's future
then gets its own outcome (stored, duplicate, unknown Subscription or mismatched one)
through one ``call_soon_threadsafe`` per batch. The lane never waits for the event loop:
right after a commit it takes the next batch and runs its statements, then hands the
committed batch's outcomes over and commits the next, so the loop answers while the disk
flushes. On SQLite a commit is an fsync, so one commit for many requests is most of the
speed-up; on PostgreSQL it saves round trips.

If the batch fails because the database is unreachable or locked, every request in it gets
that error (the API answers 503 + Retry-After; nothing was stored, a retry is safe). Any
other failure is retried one notification at a time, so one bad row never decides another
request's answer. A request whose client went away before its batch started is dropped
unstored.

Each lane keeps one connection while busy (no pool pre-ping per request); after a short
idle time it gives the connection back and its thread ends, to start again with the next
notification. SQLite has one lane; on PostgreSQL two batches commit at once. After each
commit the new ids go to a :class:`WakeUps` thread, which wakes the worker with one task
for everything that accumulated: the broker is never on a request's path, and a broker
outage clears ``enqueued_at`` so the relay takes those rows.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, RootTransaction
from sqlalchemy.exc import DBAPIError

from fhir_bridge.ingest.service import (
    Accepted,
    Notification,
    Outcome,
    log_accepted_batch,
    store_notifications,
)

log = logging.getLogger(__name__)

Wake = Callable[[list[int]], bool]
"""Hand inbox ids to the worker; ``False`` when the broker did not take them."""


def _unavailable(exc: BaseException) -> bool:
    from fhir_bridge.api.app import database_unavailable

    return database_unavailable(exc)


class WakeUps:
    """Coalesces inbox ids and wakes the worker once per round, off the request path."""

    def __init__(
        self,
        wake: Wake,
        on_lost: Callable[[list[int]], None],
        *,
        every_seconds: float = 0.02,
        busy_ids: int = 5,
        busy_every_seconds: float = 0.2,
    ) -> None:
        self._wake = wake
        self._on_lost = on_lost
        # At most one wake-up per interval: a Celery publish costs about a millisecond of
        # CPU (and the GIL) in the API process; under load one task carries many
        # notifications. A round that carried ``busy_ids`` or more (250/s at the 20 ms pace,
        # more than a worker applies) finds the worker with a backlog, which a longer pause
        # does not delay; it saves the API most of its publishes.
        self._every = every_seconds
        self._busy_ids = busy_ids
        self._busy_every = busy_every_seconds
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
            pause = self._busy_every if len(ids) >= self._busy_ids else self._every
            time.sleep(max(0.0, pause - (time.monotonic() - started)))


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
        self._waiting: queue.SimpleQueue[_Waiting] = queue.SimpleQueue()
        # SQLite has one writer at a time; PostgreSQL commits two batches at once (one
        # waits for its WAL flush while the other is built), rows in dedupe-key order.
        lanes = 2 if engine.dialect.name == "postgresql" else 1
        self._lanes = [
            _Lane(engine, clock, self._waiting, wake_ups, max_batch, idle_seconds)
            for _ in range(lanes)
        ]

    async def store(self, note: Notification) -> Accepted:
        """Store ``note`` with whatever else is waiting; returns once it is durable.

        Raises :class:`NotAuthenticated` / :class:`InvalidNotification` from the batch, or
        the database error when it could not be stored.
        """
        future: asyncio.Future[Accepted] = asyncio.get_running_loop().create_future()
        self._waiting.put((note, future))
        for lane in self._lanes:
            lane.ensure_running()
        return await future


_Waiting = tuple[Notification, "asyncio.Future[Accepted]"]
_Staged = tuple[RootTransaction, list[Outcome]]


class _Lane:
    """A database thread with its own connection, storing one batch per transaction (see
    the module docstring). It gives its connection back and ends after ``idle`` seconds
    with nothing to do; ``ensure_running`` starts it again."""

    def __init__(
        self,
        engine: Engine,
        clock: Callable[[], datetime],
        waiting: queue.SimpleQueue[_Waiting],
        wake_ups: WakeUps,
        max_batch: int,
        idle_seconds: float,
    ) -> None:
        self._engine = engine
        self._clock = clock
        self._waiting = waiting
        self._wake_ups = wake_ups
        self._max_batch = max_batch
        self._idle = idle_seconds
        self._running = False
        self._lock = threading.Lock()
        self._connection: Connection | None = None  # used only in the lane's thread

    def ensure_running(self) -> None:
        # Under the lock: the thread decides to end under it too, after seeing no work.
        with self._lock:
            if not self._running:
                self._running = True
                threading.Thread(
                    target=self._run, name="fhir-bridge-ingest-writer", daemon=True
                ).start()

    def _run(self) -> None:
        batch: list[_Waiting] | None = []
        committed: tuple[list[_Waiting], list[Outcome | BaseException]] | None = None
        try:
            while (batch := self._take(wait=committed is None)) is not None:
                notes = [note for note, _ in batch]
                # The next batch's statements run before the last one is answered: the
                # event loop is idle then (every request waits on this lane), so they do not
                # queue for the GIL behind it, and its commit overlaps the answering.
                staged = self._stage(notes) if notes else None
                if committed is not None:
                    self._answer(*committed)
                    committed = None
                if notes:
                    committed = (batch, self._commit(notes, staged))
        except BaseException as exc:  # never leave requests waiting on a thread that is gone
            self._release()
            with self._lock:
                self._running = False
            if committed is not None:
                self._answer(*committed)
            if batch:
                self._answer(batch, [exc] * len(batch))
            raise

    def _take(self, *, wait: bool) -> list[_Waiting] | None:
        """The next batch (maybe empty: nothing waiting, or every request in it went away),
        or ``None`` to end after ``idle`` seconds of waiting for one."""
        try:
            first = self._waiting.get(timeout=self._idle) if wait else self._waiting.get_nowait()
        except queue.Empty:
            if not wait:
                return []
            self._release()  # before another thread may start on this lane
            with self._lock:
                if self._waiting.empty():  # ``store`` puts, then looks at ``_running``
                    self._running = False
                    return None
            return []
        taken = [first]
        while len(taken) < self._max_batch:
            try:
                taken.append(self._waiting.get_nowait())
            except queue.Empty:
                break
        # A request whose client went away before its batch started is dropped unstored.
        return [(note, future) for note, future in taken if not future.done()]

    def _answer(self, batch: list[_Waiting], outcomes: list[Outcome | BaseException]) -> None:
        """Answer each request on its own loop, wake the worker for the new rows, log."""
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[Any, Outcome | BaseException]]] = {}
        for (_, future), outcome in zip(batch, outcomes, strict=True):
            by_loop.setdefault(future.get_loop(), []).append((future, outcome))
        for loop, answers in by_loop.items():
            try:
                loop.call_soon_threadsafe(_settle, answers)
            except RuntimeError:  # the loop closed: nobody is waiting for these answers
                log.debug("event loop closed before its answers", extra={"count": len(answers)})
        self._wake_ups.add(
            [o.inbox_id for o in outcomes if isinstance(o, Accepted) and o.inbox_id is not None]
        )
        log_accepted_batch([note for note, _ in batch], outcomes)

    def _stage(self, notes: list[Notification]) -> _Staged | Exception:
        """The batch's statements in a transaction left open for :meth:`_commit`, or what
        stopped them (the transaction rolled back)."""
        transaction: RootTransaction | None = None
        try:
            if self._connection is None or self._connection.closed:
                self._connection = self._engine.connect()
            transaction = self._connection.begin()
            return transaction, store_notifications(
                self._connection, notes, enqueued_at=self._clock()
            )
        except Exception as exc:
            self._abandon(transaction, exc)
            return exc

    def _commit(
        self, notes: list[Notification], staged: _Staged | Exception | None
    ) -> list[Outcome | BaseException]:
        """Commit a staged batch: its outcomes once durable. A batch that failed is retried
        one notification at a time, unless the database is unreachable or locked."""
        failure = staged if isinstance(staged, Exception) else None
        if isinstance(staged, tuple):
            transaction, outcomes = staged
            try:
                transaction.commit()
                return list(outcomes)
            except Exception as exc:
                self._abandon(transaction, exc)
                failure = exc
        assert failure is not None  # a batch with notes is always staged
        if _unavailable(failure) or len(notes) == 1:
            return [failure] * len(notes)
        log.warning(
            "group commit failed; storing one at a time",
            extra={"error": type(failure).__name__, "count": len(notes)},
        )
        return [outcome for note in notes for outcome in self._commit([note], self._stage([note]))]

    def _abandon(self, transaction: RootTransaction | None, exc: Exception) -> None:
        if transaction is not None and transaction.is_active:
            try:
                transaction.rollback()
            except Exception as rollback_error:  # the connection is gone: released below
                log.debug("rollback failed", extra={"error": type(rollback_error).__name__})
        if isinstance(exc, DBAPIError):
            self._release()  # a broken or locked connection: a fresh one next time

    def _release(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            try:
                connection.close()
            except Exception as exc:  # closing a dead connection may fail; it is gone either way
                log.debug("closing the writer's connection failed", extra={"error": str(exc)})


def _settle(answers: list[tuple[Any, Outcome | BaseException]]) -> None:
    """On the event loop: each waiting request gets its outcome (unless it went away)."""
    for future, outcome in answers:
        if future.done():
            continue
        if isinstance(outcome, Accepted):
            future.set_result(outcome)
        else:
            future.set_exception(outcome)
