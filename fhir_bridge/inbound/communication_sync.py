"""Bringing a message's Communication in the EHR up to date with its delivery status.

Runs in a Celery task after the callback's transaction committed. The row in
``communication_sync`` is the record of the work: claimed with a lease, settled ``done``
only after the EHR has the new status, otherwise back to ``pending`` for the relay. It waits
for the lead's write-back to have created the Communication first.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from fhir_bridge.fhir.errors import EhrError, EhrNotFound
from fhir_bridge.fhir_api.repository import record_version
from fhir_bridge.inbound import repository
from fhir_bridge.inbound.ehr_updates import ConcurrentUpdateConflict, update_with_retry
from fhir_bridge.inbound.resources import validate_r4
from fhir_bridge.inbound.status import communication_target, with_delivery_status
from fhir_bridge.store.db import transaction
from fhir_bridge.store.models import DeliveryReceipt

log = logging.getLogger(__name__)

MAX_SYNC_ATTEMPTS = 50


@dataclass
class SyncDeps:
    factory: sessionmaker[Session]
    ehr: Any
    clock: Callable[[], datetime]
    lease: timedelta
    retry_after: timedelta
    update_attempts: int


def sync_communication(deps: SyncDeps, message_id: str) -> str:
    """Update one Communication; returns updated / unchanged / waiting / retry / skipped."""
    now = deps.clock()
    with transaction(deps.factory) as session:
        if not repository.claim_sync(session, message_id, now, deps.lease):
            return "skipped"
        message = repository.get_message(session, message_id)
        if message is None:
            repository.finish_sync(session, message_id, "failed", now, retry_at=None)
            return "skipped"
        if message.communication_status != "written" or not message.communication_id:
            repository.finish_sync(
                session, message_id, "pending", now, retry_at=now + deps.retry_after
            )
            return "waiting"
        communication_id = message.communication_id
        target = communication_target(message.delivery_status, _last_error(session, message_id))
        attempts = repository.sync_attempts(session, message_id)
    if target is None:
        _settle(deps, message_id, "done")
        return "unchanged"

    sent: list[dict[str, Any]] = []  # what we PUT, kept as a version for the FHIR API

    def change(current: dict[str, Any]) -> dict[str, Any] | None:
        updated = with_delivery_status(current, target)
        if updated is not None:
            validate_r4(updated)
            sent.append(updated)
        return updated

    try:
        stored = update_with_retry(
            deps.ehr, "Communication", communication_id, change, attempts=deps.update_attempts
        )
    except EhrNotFound:
        _settle(deps, message_id, "failed")
        log.warning("communication missing in the EHR", extra={"message_id": message_id})
        return "skipped"
    except (EhrError, ConcurrentUpdateConflict) as exc:
        final = attempts >= MAX_SYNC_ATTEMPTS
        _settle(deps, message_id, "failed" if final else "pending", retry=not final)
        log.warning(
            "communication update deferred",
            extra={"message_id": message_id, "error": type(exc).__name__},
        )
        return "retry"
    _settle(deps, message_id, "done", version=sent[-1] if sent else None, stored=stored)
    log.info(
        "communication status synced",
        extra={"message_id": message_id, "status": stored.get("status")},
    )
    return "updated"


def _settle(
    deps: SyncDeps,
    message_id: str,
    status: str,
    *,
    retry: bool = False,
    version: dict[str, Any] | None = None,
    stored: dict[str, Any] | None = None,
) -> None:
    now = deps.clock()
    with transaction(deps.factory) as session:
        retry_at = now + deps.retry_after if retry else None
        repository.finish_sync(session, message_id, status, now, retry_at=retry_at)
        if version is not None and stored is not None:
            record_version(
                session,
                version,
                ehr_id=stored.get("id"),
                ehr_version=(stored.get("meta") or {}).get("versionId"),
                recorded_at=now,
            )


def _last_error(session: Session, message_id: str) -> str | None:
    receipts = repository.applied_receipts(session, message_id)
    codes = [r.error_code for r in receipts if isinstance(r, DeliveryReceipt) and r.error_code]
    return codes[-1] if codes else None
