"""Accepting a notification: authenticate, check its structure, make it durable, then answer.

The API checks what it can without the database (credentials, bounds, structure; full
FHIR validation of the resources a topic Bundle carries happens in the worker), then hands
the notification to the group-commit writer (``ingest.writer``), which stores many
concurrent requests with one ``INSERT … ON CONFLICT DO NOTHING RETURNING`` and one commit.
The HTTP 2xx goes out only after that commit; the worker is woken once per batch
afterwards. If the broker is down, the relay picks the rows up, so a Redis outage delays
work but loses none.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.orm import Session, sessionmaker

from fhir_bridge.ingest import repository
from fhir_bridge.ingest.auth import is_authentic
from fhir_bridge.ingest.parsing import (
    InvalidNotification,
    ParsedNotification,
    body_digest,
    decode_body,
    parse_notification,
)
from fhir_bridge.store.db import transaction

log = logging.getLogger(__name__)

# Our Subscription ids are UUIDs (``subscription.id`` is 36 characters); anything else in
# the URL (a NUL byte, a 10 kB string) cannot name one and never reaches the database.
SUBSCRIPTION_ID = re.compile(r"[A-Za-z0-9\-]{1,36}")


class NotAuthenticated(PermissionError):
    """Unknown subscription or bad credentials: answered 401, nothing stored."""


@dataclass(frozen=True)
class Accepted:
    inbox_id: int | None
    duplicate: bool
    kind: str


@dataclass(frozen=True)
class Notification:
    """An authenticated, structurally checked notification, not stored yet."""

    subscription_id: str
    parsed: ParsedNotification
    digest: str
    body: dict[str, Any] | None
    received_at: datetime


def check_notification(
    *,
    master_secret: str,
    subscription_id: str,
    authorization: str | None,
    signature: str | None,
    body: bytes,
    path_type: str | None,
    path_id: str | None,
    now: datetime,
) -> Notification:
    """Everything checked before the database is asked anything (no I/O)."""
    # Credentials are derived from the id, so they are checked first: an unknown id and a
    # bad credential get the same answer, the same way.
    if not SUBSCRIPTION_ID.fullmatch(subscription_id) or not is_authentic(
        master_secret=master_secret,
        subscription_id=subscription_id,
        authorization=authorization,
        signature=signature,
        body=body,
    ):
        raise NotAuthenticated("notification not authenticated")
    payload = decode_body(body)
    parsed = parse_notification(payload, path_type=path_type, path_id=path_id, full=False)
    return Notification(
        subscription_id=subscription_id,
        parsed=parsed,
        digest=body_digest(body),
        body=payload if isinstance(payload, dict) else None,
        received_at=now,
    )


Outcome = Accepted | NotAuthenticated | InvalidNotification


def store_notifications(
    connection: Connection, batch: Sequence[Notification], *, enqueued_at: datetime | None
) -> list[Outcome]:
    """Store a batch in the caller's transaction: two statements, whatever its size.

    One read of the Subscriptions it names (unknown → :class:`NotAuthenticated`, a
    notification naming another remote Subscription → :class:`InvalidNotification`), then
    one ``INSERT … ON CONFLICT DO NOTHING RETURNING``. Each notification gets its own
    outcome, in order; the first of several with one dedupe key is stored, the others are
    duplicates. ``enqueued_at``: when the worker will be woken for them (``None``: by the
    relay).
    """
    remote = repository.remote_ids(connection, {n.subscription_id for n in batch})
    outcomes: list[Outcome | str] = []
    rows: dict[str, dict[str, Any]] = {}
    for note in batch:
        if note.subscription_id not in remote:
            outcomes.append(NotAuthenticated("notification not authenticated"))
            continue
        remote_id, epoch = remote[note.subscription_id]
        named = note.parsed.subscription_ref
        if named and remote_id and named.split("/")[-1] != remote_id:
            outcomes.append(InvalidNotification("notification names a different Subscription"))
            continue
        # Keyed by the remote Subscription too: a re-created one numbers events from 1 (and
        # an EHR that lost its state may give it the same id: hence the epoch).
        incarnation = f"{note.subscription_id}/{remote_id or ''}" + (
            f"#{epoch}" if epoch > 1 else ""
        )
        key = note.parsed.dedupe_key(incarnation, note.digest)
        event_range = note.parsed.event_range() or (None, None)
        rows.setdefault(
            key,
            {
                "subscription_id": note.subscription_id,
                "dedupe_key": key,
                "kind": note.parsed.kind,
                "body": note.body,
                "received_at": note.received_at,
                "enqueued_at": enqueued_at,
                "event_first": event_range[0],
                "event_last": event_range[1],
            },
        )
        outcomes.append(key)
    # In key order: two batches committing at once lock their keys in the same order.
    inserted = repository.insert_new(connection, [rows[key] for key in sorted(rows)])
    results: list[Outcome] = []
    for note, outcome in zip(batch, outcomes, strict=True):
        if not isinstance(outcome, str):
            results.append(outcome)
            continue
        inbox_id = inserted.pop(outcome, None)  # only the first with this key is new
        results.append(Accepted(inbox_id, duplicate=inbox_id is None, kind=note.parsed.kind))
    return results


def log_accepted(note: Notification, accepted: Accepted) -> None:
    log.info(
        "notification accepted",
        extra={
            "subscription": note.subscription_id,
            "kind": accepted.kind,
            "duplicate": accepted.duplicate,
        },
    )


def log_accepted_batch(
    notes: Sequence[Notification], outcomes: Sequence[Outcome | BaseException]
) -> None:
    """One INFO line per group commit, not one per request: a line costs the API about
    50 µs of CPU (formatting, masking, the write) and the inbox row is the record. A batch
    of one reads as :func:`log_accepted`'s line; a larger one gives its size, and the
    subscription and kind when they are shared."""
    accepted = [
        (note, outcome)
        for note, outcome in zip(notes, outcomes, strict=True)
        if isinstance(outcome, Accepted)
    ]
    if not accepted or not log.isEnabledFor(logging.INFO):
        return
    if len(accepted) == 1:
        log_accepted(*accepted[0])
        return
    extra: dict[str, object] = {
        "count": len(accepted),
        "duplicate": sum(outcome.duplicate for _, outcome in accepted),
    }
    for key, values in (
        ("subscription", {note.subscription_id for note, _ in accepted}),
        ("kind", {outcome.kind for _, outcome in accepted}),
    ):
        if len(values) == 1:
            extra[key] = values.pop()
    log.info("notification accepted", extra=extra)


def accept_notification(
    factory: sessionmaker[Session],
    *,
    master_secret: str,
    subscription_id: str,
    authorization: str | None,
    signature: str | None,
    body: bytes,
    path_type: str | None,
    path_id: str | None,
    now: datetime,
    enqueue: Callable[[int], None],
) -> Accepted:
    """Store one notification on its own (the CLI and tests; the API batches).

    ``enqueue`` runs after commit and must not raise on a broker outage (the relay
    re-enqueues later).
    """
    note = check_notification(
        master_secret=master_secret,
        subscription_id=subscription_id,
        authorization=authorization,
        signature=signature,
        body=body,
        path_type=path_type,
        path_id=path_id,
        now=now,
    )
    with transaction(factory) as session:
        (outcome,) = store_notifications(session.connection(), [note], enqueued_at=None)
    if not isinstance(outcome, Accepted):
        raise outcome
    log_accepted(note, outcome)
    if outcome.inbox_id is not None:
        enqueue(outcome.inbox_id)
    return outcome
