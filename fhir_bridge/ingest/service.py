"""Accepting a notification: authenticate, validate, make it durable, then answer.

The inbox row and its dedupe key are committed in one transaction before the
HTTP 2xx; only after the commit is a Celery job enqueued. If the broker is down,
the relay picks the row up later, so a Redis outage delays work but loses none.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from fhir_bridge.ingest import repository
from fhir_bridge.ingest.auth import is_authentic
from fhir_bridge.ingest.parsing import InvalidNotification, body_digest, parse_notification
from fhir_bridge.store.db import transaction
from fhir_bridge.store.models import Subscription

log = logging.getLogger(__name__)


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
    with transaction(factory) as session:
        subscription = session.get(Subscription, subscription_id)
        if subscription is None or not is_authentic(
            master_secret=master_secret,
            subscription_id=subscription_id,
            authorization=authorization,
            signature=signature,
            body=body,
        ):
            raise NotAuthenticated("notification not authenticated")
        payload = _decode(body)
        parsed = parse_notification(payload, path_type=path_type, path_id=path_id)
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


def _decode(body: bytes) -> Any:
    if not body.strip():
        return None
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise InvalidNotification("body is not valid JSON", code="structure") from None
