"""SQL for the inbox of accepted notifications."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

import orjson
from sqlalchemy import Connection, and_, func, select, update
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Session

from fhir_bridge.store import worklist
from fhir_bridge.store.models import InboxNotification, Subscription

_INBOX = InboxNotification.__table__
_SUBSCRIPTION = Subscription.__table__


# The API's hot path (two statements per group commit) runs as driver-level SQL through
# ``Connection.exec_driver_sql``: no statement compilation, cache lookup or per-parameter
# processing in Python for each batch, yet the statement still goes through SQLAlchemy's
# events (statement counts) and error handling (a lost connection is invalidated, a driver
# error arrives as ``sqlalchemy.exc.DBAPIError``). Values are converted with the columns'
# own bind processors, as the ORM converts them, except the body: orjson writes the same
# JSON value as ``json.dumps`` (compact, UTF-8) for a tenth of the CPU, a tenth of a
# request's when it went through the standard library.
_INSERT_COLUMNS = (
    "subscription_id",
    "dedupe_key",
    "kind",
    "body",
    "received_at",
    "enqueued_at",
    "event_first",
    "event_last",
    "status",
    "attempts",
)
_OPTIONAL = {"event_first": None, "event_last": None}
_NEW_ROW = {"status": "pending", "attempts": 0}


def remote_ids(
    connection: Connection, subscription_ids: Collection[str]
) -> dict[str, tuple[str | None, int]]:
    """``{id: (remote_id, remote_epoch)}`` for those of ``subscription_ids`` we have."""
    ids = sorted(subscription_ids)
    if not ids:
        return {}
    sql = _remote_ids_sql(_placeholder(connection.dialect), len(ids))
    rows = connection.exec_driver_sql(sql, tuple(ids))
    return {row[0]: (row[1], row[2] or 0) for row in rows}


def insert_new(connection: Connection, rows: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    """Store every notification whose dedupe key is new, in one statement.

    ``INSERT … ON CONFLICT (dedupe_key) DO NOTHING RETURNING id, dedupe_key`` (SQLite ≥ 3.35
    and PostgreSQL): returns ``{dedupe_key: id}`` of the rows this statement inserted; a key
    missing from it was already stored (a redelivery). ``rows`` hold ``subscription_id``,
    ``dedupe_key``, ``kind``, ``body``, ``received_at``, ``enqueued_at`` and optionally
    ``event_first`` / ``event_last``.
    """
    if not rows:
        return {}
    dialect = connection.dialect
    converters = _converters(dialect)
    parameters: list[Any] = []
    for row in rows:
        values = {**_OPTIONAL, **row, **_NEW_ROW}
        for column, convert in converters:
            value = values[column]
            parameters.append(value if convert is None else convert(value))
    sql = _insert_sql(_placeholder(dialect), len(rows))
    result = connection.exec_driver_sql(sql, tuple(parameters))
    return {dedupe_key: inbox_id for inbox_id, dedupe_key in result}


def _placeholder(dialect: Dialect) -> str:
    return "?" if dialect.paramstyle in ("qmark", "numeric") else "%s"


@lru_cache(maxsize=64)
def _converters(dialect: Dialect) -> tuple[tuple[str, Callable[[Any], Any] | None], ...]:
    """Each inserted column with its bind processor on ``dialect`` (``None``: as is)."""
    return tuple(
        (
            name,
            _json_text
            if name == "body"
            else _INBOX.c[name].type.dialect_impl(dialect).bind_processor(dialect),
        )
        for name in _INSERT_COLUMNS
    )


def _json_text(value: Any) -> str:
    """A JSON column's text (``None`` is JSON ``null``, as SQLAlchemy stores it)."""
    return orjson.dumps(value).decode()


# Only constants and placeholders are joined into these statements.
_INSERT_HEAD = "".join(
    ("INSERT INTO inbox_notification (", ", ".join(_INSERT_COLUMNS), ") VALUES ")
)
_INSERT_TAIL = " ON CONFLICT (dedupe_key) DO NOTHING RETURNING id, dedupe_key"
_REMOTE_IDS_HEAD = "SELECT id, remote_id, remote_epoch FROM subscription WHERE id IN "


@lru_cache(maxsize=512)
def _insert_sql(placeholder: str, rows: int) -> str:
    group = "(" + ", ".join([placeholder] * len(_INSERT_COLUMNS)) + ")"
    return "".join((_INSERT_HEAD, ", ".join([group] * rows), _INSERT_TAIL))


@lru_cache(maxsize=64)
def _remote_ids_sql(placeholder: str, ids: int) -> str:
    return "".join((_REMOTE_IDS_HEAD, "(", ", ".join([placeholder] * ids), ")"))


def insert_if_new(
    session: Session,
    *,
    subscription_id: str | None,
    dedupe_key: str,
    kind: str,
    body: dict[str, Any] | None,
    now: datetime,
) -> int | None:
    """One notification through :func:`insert_new`: its id, or ``None`` for a duplicate."""
    row = {
        "subscription_id": subscription_id,
        "dedupe_key": dedupe_key,
        "kind": kind,
        "body": body,
        "received_at": now,
        "enqueued_at": None,
    }
    return insert_new(session.connection(), [row]).get(dedupe_key)


def forget_enqueued(session: Session, ids: Sequence[int]) -> None:
    """The wake-up for these never reached the broker: the relay takes them next tick."""
    if ids:
        session.execute(
            update(InboxNotification)
            .where(InboxNotification.id.in_(ids), InboxNotification.status == "pending")
            .values(enqueued_at=None)
        )


def refresh_subscription_clocks(session: Session) -> None:
    """Each Subscription's last notification and heartbeat, derived from the inbox.

    The API never updates the Subscription row (every request would wait on its lock);
    the relay and the health check bring these two columns up to date instead, and only
    where they moved.
    """
    for column, only_heartbeats in (
        (Subscription.last_notification_at, False),
        (Subscription.last_heartbeat_at, True),
    ):
        condition = InboxNotification.subscription_id == Subscription.id
        if only_heartbeats:
            condition = and_(condition, InboxNotification.kind == "heartbeat")
        newest = select(func.max(InboxNotification.received_at)).where(condition).scalar_subquery()
        session.execute(
            update(Subscription)
            .where((column.is_(None) & newest.is_not(None)) | (column < newest))
            .values({column: newest})
            .execution_options(synchronize_session=False)
        )


def claim(session: Session, inbox_id: int, now: datetime, lease: timedelta) -> bool:
    """Atomically take a pending (or abandoned) notification; False if someone else has it."""
    return worklist.claim(session, InboxNotification, inbox_id, now, lease)


def get(session: Session, inbox_id: int) -> InboxNotification | None:
    return session.get(InboxNotification, inbox_id)


def mark_done(session: Session, row: InboxNotification, now: datetime) -> None:
    row.status = "done"
    row.processed_at = now
    row.lease_until = None
    row.error_code = None


def mark_rejected(session: Session, inbox_id: int, now: datetime, reason: str) -> None:
    """Full validation refused it: final, with the reason (field names, never values), and
    counted against its Subscription."""
    subscription_id = session.scalar(
        update(InboxNotification)
        .where(InboxNotification.id == inbox_id)
        .values(status="rejected", error_code=reason[:200], lease_until=None, processed_at=now)
        .returning(InboxNotification.subscription_id)
    )
    if subscription_id is not None:
        session.execute(
            update(Subscription)
            .where(Subscription.id == subscription_id)
            .values(notifications_rejected=Subscription.notifications_rejected + 1)
        )


def mark_failed(session: Session, inbox_id: int, now: datetime, code: str, final: bool) -> None:
    """Record a processing failure; non-final failures go back to pending for the relay."""
    session.execute(
        update(InboxNotification)
        .where(InboxNotification.id == inbox_id)
        .values(
            status="failed" if final else "pending",
            error_code=code[:200],
            lease_until=None,
            enqueued_at=None if not final else InboxNotification.enqueued_at,
            processed_at=now if final else None,
        )
    )


def due_for_relay(
    session: Session, now: datetime, stale_after: timedelta, limit: int
) -> Sequence[int]:
    """Notifications never handed to the queue, or handed over long ago and still not done."""
    return worklist.due_for_relay(session, InboxNotification, now, stale_after, limit)


def mark_enqueued(session: Session, ids: Sequence[int], now: datetime) -> None:
    worklist.mark_enqueued(session, InboxNotification, ids, now)


def claim_many(
    session: Session, inbox_ids: Sequence[int], now: datetime, lease: timedelta
) -> list[Any]:
    """Claim several notifications at once: the won rows' ``id``, ``subscription_id``,
    ``kind``, ``body``, ``received_at`` and ``attempts`` (this claim counted), in id order."""
    columns = (
        InboxNotification.id,
        InboxNotification.subscription_id,
        InboxNotification.kind,
        InboxNotification.body,
        InboxNotification.received_at,
        InboxNotification.attempts,
    )
    return worklist.claim_many(session, InboxNotification, inbox_ids, now, lease, columns)


def mark_done_by_id(session: Session, inbox_id: int, now: datetime) -> None:
    """:func:`mark_done` without loading the row."""
    session.execute(
        update(InboxNotification)
        .where(InboxNotification.id == inbox_id)
        .values(status="done", processed_at=now, lease_until=None, error_code=None)
    )
