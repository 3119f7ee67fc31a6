"""Turning notifications, catch-up searches and polls into current resource state.

One rule keeps this correct under duplicates, reordering and loss: a resource
version is applied only if it is newer than what we hold (``meta.versionId``,
else ``meta.lastUpdated``; re-read from the EHR when we cannot tell). Gaps in
event numbers, missed heartbeats and subscriptions in ``error`` are all closed
the same way: ``$events`` where the EHR supports it, otherwise a search by
``_lastUpdated`` from the last point we know we had everything.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from fhir_bridge.fhir.client import EhrClient
from fhir_bridge.fhir.errors import EhrNotFound, EhrNotSupported
from fhir_bridge.fhir.resources import (
    InvalidResource,
    Version,
    compare_versions,
    patient_reference,
    validate_resource,
)
from fhir_bridge.ingest.parsing import ParsedNotification, parse_topic_bundle
from fhir_bridge.store.models import InboxNotification, Subscription
from fhir_bridge.sync import repository

log = logging.getLogger(__name__)


@dataclass
class SyncDeps:
    """What sync needs from the outside world, passed in so tests can vary it."""

    ehr: EhrClient
    now: datetime
    skew: timedelta
    on_patient_changed: Callable[[Session, str], None]


def apply_resource(session: Session, deps: SyncDeps, resource: dict[str, Any]) -> str:
    """Store a resource version if it is newer; returns applied / duplicate / stale / invalid."""
    try:
        validate_resource(resource)
    except InvalidResource:
        log.warning("ignoring invalid resource", extra={"type": resource.get("resourceType")})
        return "invalid"
    resource_type, resource_id = resource["resourceType"], resource["id"]
    existing = repository.get_state_for_update(session, resource_type, resource_id)
    incoming = Version.of(resource)
    if existing is not None:
        stored = Version(existing.version_id, existing.last_updated)
        verdict = compare_versions(incoming, stored)
        if verdict is None:
            resource = _reread(deps, resource_type, resource_id) or resource
            incoming = Version.of(resource)
            verdict = compare_versions(incoming, stored)
            if verdict is None:
                verdict = 1
        if verdict == 0:
            return "duplicate"
        if verdict < 0:
            log.info("stale version skipped", extra={"type": resource_type, "id": resource_id})
            return "stale"
    old_patient = existing.patient_ref if existing is not None else None
    patient_ref = patient_reference(resource)
    repository.save_state(
        session,
        existing,
        resource=resource,
        version_id=incoming.version_id,
        last_updated=incoming.last_updated,
        patient_ref=patient_ref,
        now=deps.now,
    )
    session.flush()
    for ref in {old_patient, patient_ref} - {None}:
        deps.on_patient_changed(session, str(ref))
    return "applied"


def _reread(deps: SyncDeps, resource_type: str, resource_id: str) -> dict[str, Any] | None:
    try:
        return deps.ehr.read(resource_type, resource_id)
    except EhrNotFound:
        return None


def fetch_and_apply(session: Session, deps: SyncDeps, reference: str) -> str:
    """id-only: read the focus from the EHR (the current version) and apply it."""
    resource_type, _, resource_id = reference.partition("/")
    try:
        resource = deps.ehr.read(resource_type, resource_id)
    except EhrNotFound:
        return forget_resource(session, deps, resource_type, resource_id)
    return apply_resource(session, deps, resource)


def forget_resource(session: Session, deps: SyncDeps, resource_type: str, resource_id: str) -> str:
    """The EHR deleted a resource: drop our copy so its pending messages are cancelled."""
    existing = repository.get_state_for_update(session, resource_type, resource_id)
    if existing is None:
        return "duplicate"
    patient_ref = existing.patient_ref
    session.delete(existing)
    session.flush()
    if patient_ref:
        deps.on_patient_changed(session, patient_ref)
    return "deleted"


def catch_up_by_search(
    session: Session, deps: SyncDeps, resource_type: str, since: datetime | None, page_size: int
) -> int:
    """Apply every resource of a type changed since ``since`` (minus clock skew)."""
    params: dict[str, str] = {"_sort": "_lastUpdated", "_count": str(page_size)}
    if since is not None:
        params["_lastUpdated"] = "ge" + (since - deps.skew).isoformat()
    applied = 0
    for resource in deps.ehr.search_all(resource_type, params):
        if apply_resource(session, deps, resource) == "applied":
            applied += 1
    return applied


def process_notification(
    session: Session,
    deps: SyncDeps,
    row: InboxNotification,
    subscription: Subscription,
    *,
    page_size: int,
) -> None:
    """Apply what one stored notification tells us, closing any gap it reveals."""
    body = row.body
    if row.kind == "classic-empty":
        _catch_up_subscription(session, deps, subscription, page_size, started=deps.now)
        return
    if row.kind == "classic-resource":
        assert body is not None
        apply_resource(session, deps, body)
        return
    assert body is not None
    parsed = parse_topic_bundle(body)
    if parsed.kind == "handshake":
        subscription.status = "active"
        subscription.last_error = None
        return
    _apply_events(session, deps, subscription, parsed, page_size)
    _close_gap(session, deps, subscription, parsed, page_size, received_at=row.received_at)


def _apply_events(
    session: Session,
    deps: SyncDeps,
    subscription: Subscription,
    parsed: ParsedNotification,
    page_size: int,
) -> None:
    needs_search = False
    for event in parsed.events:
        if event.resource is not None:
            apply_resource(session, deps, event.resource)
        elif event.focus:
            fetch_and_apply(session, deps, event.focus)
        else:
            needs_search = True
    if needs_search:
        catch_up_by_search(
            session, deps, subscription.resource_type, subscription.good_through, page_size
        )


def _close_gap(
    session: Session,
    deps: SyncDeps,
    subscription: Subscription,
    parsed: ParsedNotification,
    page_size: int,
    *,
    received_at: datetime,
) -> None:
    numbers = [e.number for e in parsed.events if e.number is not None]
    lowest = min(numbers) if numbers else None
    highest = max([*numbers, parsed.events_since_start or 0])
    through = subscription.events_through
    if parsed.status in ("error", "off"):
        subscription.status = parsed.status
    gap_start = through + 1
    gap_end = (lowest - 1) if lowest is not None else highest
    if gap_end >= gap_start:
        log.warning(
            "event gap detected",
            extra={"subscription": subscription.id, "from": gap_start, "to": gap_end},
        )
        recover_events(session, deps, subscription, gap_start, gap_end, page_size)
    elif highest > through:
        subscription.good_through = max(
            subscription.good_through or received_at, received_at - deps.skew
        )
    subscription.events_through = max(through, highest)


def recover_events(
    session: Session,
    deps: SyncDeps,
    subscription: Subscription,
    first: int,
    last: int,
    page_size: int,
) -> None:
    """Fetch missed events with ``$events``; fall back to a ``_lastUpdated`` search."""
    if subscription.remote_id:
        try:
            bundle = deps.ehr.operation(
                f"Subscription/{subscription.remote_id}/$events",
                params={
                    "eventsSinceNumber": str(first),
                    "eventsUntilNumber": str(last),
                    "content": "full-resource",
                },
            )
            parsed = parse_topic_bundle(bundle)
            covered = {e.number for e in parsed.events}
            if all(n in covered for n in range(first, last + 1)):
                _apply_events(session, deps, subscription, parsed, page_size)
                return
        except EhrNotSupported:
            log.info(
                "EHR has no $events; searching instead", extra={"subscription": subscription.id}
            )
    _catch_up_subscription(session, deps, subscription, page_size, started=deps.now)


def _catch_up_subscription(
    session: Session,
    deps: SyncDeps,
    subscription: Subscription,
    page_size: int,
    *,
    started: datetime,
) -> None:
    catch_up_by_search(
        session, deps, subscription.resource_type, subscription.good_through, page_size
    )
    subscription.good_through = started - deps.skew
