"""Accepting a notification: authenticate, validate, make it durable, then answer.

The inbox row and its dedupe key are committed in one transaction before the
HTTP 2xx; only after the commit is a Celery job enqueued. If the broker is down,
the relay picks the row up later, so a Redis outage delays work but loses none.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session, sessionmaker

from fhir_bridge.ingest import repository
from fhir_bridge.ingest.auth import is_authentic
from fhir_bridge.ingest.parsing import (
    InvalidNotification,
    body_digest,
    decode_body,
    parse_notification,
)
from fhir_bridge.store.db import transaction
from fhir_bridge.store.models import Subscription

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
    """Store one notification exactly once and hand it to the queue after commit.

    ``enqueue`` must not raise on a broker outage (the relay re-enqueues later).
    """
    # Credentials are derived from the id, so they are checked before the database is
    # asked anything: an unknown id and a bad credential get the same answer, the same way.
    if not SUBSCRIPTION_ID.fullmatch(subscription_id) or not is_authentic(
        master_secret=master_secret,
        subscription_id=subscription_id,
        authorization=authorization,
        signature=signature,
        body=body,
    ):
        raise NotAuthenticated("notification not authenticated")
    payload = decode_body(body)
    parsed = parse_notification(payload, path_type=path_type, path_id=path_id)
    with transaction(factory) as session:
        subscription = session.get(Subscription, subscription_id)
        if subscription is None:
            raise NotAuthenticated("notification not authenticated")
        if (
            parsed.subscription_ref
            and subscription.remote_id
            and (parsed.subscription_ref.split("/")[-1] != subscription.remote_id)
        ):
            raise InvalidNotification("notification names a different Subscription")
        row = repository.insert_if_new(
            session,
            subscription_id=subscription.id,
            # Keyed by the remote id too: a re-created Subscription numbers events from 1.
            dedupe_key=parsed.dedupe_key(
                f"{subscription.id}/{subscription.remote_id or ''}", body_digest(body)
            ),
            kind=parsed.kind,
            body=payload if isinstance(payload, dict) else None,
            now=now,
        )
        subscription.last_notification_at = now
        if parsed.kind == "heartbeat":
            subscription.last_heartbeat_at = now
        inbox_id = row.id if row is not None else None
    log.info(
        "notification accepted",
        extra={"subscription": subscription_id, "kind": parsed.kind, "duplicate": row is None},
    )
    if inbox_id is not None:
        enqueue(inbox_id)
    return Accepted(inbox_id=inbox_id, duplicate=inbox_id is None, kind=parsed.kind)
