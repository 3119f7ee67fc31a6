"""Turning notifications, catch-up searches and polls into current resource state.

One rule keeps this correct under duplicates, reordering and loss: a resource
version is applied only if it is newer than what we hold (``meta.versionId``,
else ``meta.lastUpdated``; re-read from the EHR when we cannot tell). Gaps in
event numbers, missed heartbeats and subscriptions in ``error`` are all closed
the same way: ``$events`` where the EHR supports it, otherwise a search by
``_lastUpdated`` from the last point we know we had everything.

Short transactions: no EHR call while a row is locked. A notification is read
first (:func:`read_notification`: id-only focuses, ``$events``, catch-up
searches), then applied in one short transaction (:func:`process_notification`);
a pushed version we cannot order against ours comes back as "needs re-read", is
read outside the transaction (:func:`read_current`) and applied in another.
Catch-up searches, ``$events`` recovery and polls work the same way: the read phase
returns :class:`EhrReads`, and :func:`apply_in_short_transactions` applies them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy.orm import Session, sessionmaker

from fhir_bridge.fhir.client import EhrClient
from fhir_bridge.fhir.errors import EhrNotFound, EhrNotSupported
from fhir_bridge.fhir.resources import (
    InvalidResource,
    Version,
    compare_versions,
    patient_reference,
    validate_resource,
)
from fhir_bridge.ingest.parsing import NotificationEvent, ParsedNotification, parse_topic_bundle
from fhir_bridge.store.db import transaction
from fhir_bridge.store.models import Subscription
from fhir_bridge.sync import repository

log = logging.getLogger(__name__)

APPLIED = "applied"
NEEDS_REREAD = "needs-reread"
# Losing an insert race costs one more lock-and-compare; more than this is a bug.
_MAX_INSERT_RACES = 3


class StateContention(RuntimeError):
    """A resource's row kept appearing and vanishing under us (ids only in the message)."""


def _nothing_to_prefetch(_resources: list[dict[str, Any]]) -> None:
    return None


def _nothing_stored(_subscription_id: str, _first: int, _last: int) -> list[tuple[int, int]]:
    return []


@dataclass
class SyncDeps:
    """What sync needs from the outside world, passed in so tests can vary it.

    ``prefetch`` reads, outside any transaction, what re-planning for these resources will
    look up (their references, unknown patients), so applying them calls no EHR.
    """

    ehr: EhrClient
    now: datetime
    skew: timedelta
    on_patient_changed: Callable[[Session, str], None]
    prefetch: Callable[[list[dict[str, Any]]], None] = _nothing_to_prefetch
    # Event-number ranges stored notifications of a Subscription carry within first..last
    # (a short read of the inbox): those numbers are on their way, not missing.
    stored_events: Callable[[str, int, int], list[tuple[int, int]]] = _nothing_stored
    # Current versions of id-only focuses already read for a whole chunk of notifications
    # (``None``: the EHR does not have it); a focus not in here is read on its own.
    pre_read: Mapping[str, dict[str, Any] | None] = field(default_factory=dict)


def apply_resource(
    session: Session, deps: SyncDeps, resource: dict[str, Any], *, current: bool = True
) -> str:
    """Store a resource version if it is newer.

    Returns applied / duplicate / stale / invalid, or ``needs-reread``: ``current=False``
    (a version pushed to us, not one just read from the EHR) that cannot be ordered
    against ours. Nothing here calls the EHR (a row lock is held): the caller reads the
    current version outside the transaction (:func:`read_current`) and applies it in a
    new one. ``current=True`` (a read or search result) wins an undecidable comparison.

    Race-free: the row is locked before comparing, and a first version is inserted with
    ``ON CONFLICT DO NOTHING``; losing that race means comparing with the winner's row.
    """
    try:
        validate_resource(resource)
    except InvalidResource:
        log.warning("ignoring invalid resource", extra={"type": resource.get("resourceType")})
        return "invalid"
    resource_type, resource_id = resource["resourceType"], resource["id"]
    incoming = Version.of(resource)
    patient_ref = patient_reference(resource)
    for _ in range(_MAX_INSERT_RACES):
        existing = repository.get_state_for_update(session, resource_type, resource_id)
        if existing is None:
            if not repository.insert_state_if_absent(
                session,
                resource=resource,
                version_id=incoming.version_id,
                last_updated=incoming.last_updated,
                patient_ref=patient_ref,
                now=deps.now,
            ):
                continue
            if patient_ref:
                deps.on_patient_changed(session, patient_ref)
            return APPLIED
        verdict = compare_versions(incoming, Version(existing.version_id, existing.last_updated))
        if verdict is None:
            if not current:
                return NEEDS_REREAD
            verdict = 1
        if verdict == 0:
            return "duplicate"
        if verdict < 0:
            log.info("stale version skipped", extra={"type": resource_type, "id": resource_id})
            return "stale"
        old_patient = existing.patient_ref
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
        return APPLIED
    raise StateContention(f"{resource_type} row kept changing while being applied")


@dataclass
class EhrReads:
    """What applying one notification needs from the EHR, read before its transaction.

    ``resources`` pairs each version with whether it is the EHR's current one (read or
    searched) rather than pushed to us; ``deleted`` holds references the EHR no longer
    has; ``caught_up`` says a ``_lastUpdated`` search from ``good_through`` ran;
    ``gap_stored`` says the event numbers missing before this notification's are carried
    by notifications already in the inbox (applied by their own jobs, not recovered).
    """

    resources: list[tuple[dict[str, Any], bool]] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    caught_up: bool = False
    gap_stored: bool = False

    def all_resources(self) -> list[dict[str, Any]]:
        return [resource for resource, _ in self.resources]

    def extend(self, other: EhrReads) -> None:
        self.resources.extend(other.resources)
        self.deleted.extend(other.deleted)
        self.caught_up = self.caught_up or other.caught_up
        self.gap_stored = self.gap_stored or other.gap_stored


@dataclass(frozen=True)
class SubscriptionView:
    """The parts of our Subscription row the read phase needs (read in a short transaction)."""

    id: str
    resource_type: str
    remote_id: str | None
    events_through: int
    good_through: datetime | None

    @classmethod
    def of(cls, subscription: Subscription) -> SubscriptionView:
        return cls(
            subscription.id,
            subscription.resource_type,
            subscription.remote_id,
            subscription.events_through,
            subscription.good_through,
        )


def read_current(deps: SyncDeps, references: Iterable[str]) -> EhrReads:
    """Read each reference's current version (outside any transaction)."""
    reads = EhrReads()
    for reference in dict.fromkeys(references):
        _read_focus(deps, reference, reads)
    return reads


def _read_focus(deps: SyncDeps, reference: str, reads: EhrReads) -> None:
    resource_type, _, resource_id = reference.partition("/")
    try:
        reads.resources.append((deps.ehr.read(resource_type, resource_id), True))
    except EhrNotFound:
        reads.deleted.append(reference)


@dataclass
class Applied:
    """What applying some reads changed: new versions and deletions (``changed``), and the
    references of pushed versions that need a re-read (``unordered``)."""

    changed: int = 0
    unordered: list[str] = field(default_factory=list)


def apply_reads(session: Session, deps: SyncDeps, reads: EhrReads) -> Applied:
    """Apply what the read phase gathered (no EHR call)."""
    applied = Applied()
    for resource, current in reads.resources:
        outcome = apply_resource(session, deps, resource, current=current)
        if outcome == NEEDS_REREAD:
            applied.unordered.append(f"{resource['resourceType']}/{resource['id']}")
        elif outcome == APPLIED:
            applied.changed += 1
    for reference in reads.deleted:
        resource_type, _, resource_id = reference.partition("/")
        if forget_resource(session, deps, resource_type, resource_id) == "deleted":
            applied.changed += 1
    return applied


def apply_in_short_transactions(
    sessions: sessionmaker[Session],
    deps: SyncDeps,
    reads: EhrReads,
    then: Callable[[Session], None] | None = None,
) -> int:
    """Apply reads gathered outside any transaction; returns how many resources changed.

    One short transaction applies them (and runs ``then`` in it, e.g. moving a watermark);
    versions it cannot order are re-read with no transaction open and applied in another.
    """
    deps.prefetch(reads.all_resources())
    with transaction(sessions) as session:
        applied = apply_reads(session, deps, reads)
        if then is not None:
            then(session)
    if not applied.unordered:
        return applied.changed
    current = read_current(deps, applied.unordered)
    deps.prefetch(current.all_resources())
    with transaction(sessions) as session:
        return applied.changed + apply_reads(session, deps, current).changed


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


def search_since(
    deps: SyncDeps, resource_type: str, since: datetime | None, page_size: int
) -> list[dict[str, Any]]:
    """Every resource of a type changed since ``since`` (minus clock skew), all pages read."""
    return list(deps.ehr.search_all(resource_type, since_params(deps, since, page_size)))


def since_params(deps: SyncDeps, since: datetime | None, page_size: int) -> dict[str, str]:
    """The search for what changed since ``since`` (minus clock skew), oldest first."""
    params: dict[str, str] = {"_sort": "_lastUpdated", "_count": str(page_size)}
    if since is not None:
        params["_lastUpdated"] = "ge" + (since - deps.skew).isoformat()
    return params


def read_notification(
    deps: SyncDeps,
    kind: str,
    body: dict[str, Any] | None,
    subscription: SubscriptionView,
    *,
    page_size: int,
) -> EhrReads:
    """Every EHR read one stored notification needs, done before its transaction opens.

    id-only focuses are read; a gap in event numbers is recovered with ``$events`` or a
    ``_lastUpdated`` search. The gap is judged against ``subscription`` as read just
    before: ``events_through`` only grows, so the transaction's gap is never larger.
    """
    reads = EhrReads()
    if kind == "classic-empty":
        _read_catch_up(deps, subscription, page_size, reads)
        return reads
    if kind == "classic-resource":
        assert body is not None
        reads.resources.append((body, False))
        return reads
    assert body is not None
    parsed = parse_topic_bundle(body)
    if parsed.kind == "handshake":
        return reads
    _read_events(deps, subscription, parsed.events, page_size, reads)
    gap = _gap(parsed, subscription.events_through)
    if gap is not None:
        missing = unstored_gap(deps, subscription.id, gap[0], gap[1])
        if missing is None:
            reads.gap_stored = True
        else:
            _read_recovery(deps, subscription, missing[0], missing[1], page_size, reads)
    return reads


def unstored_gap(
    deps: SyncDeps, subscription_id: str, first: int, last: int
) -> tuple[int, int] | None:
    """The part of the event numbers ``first``..``last`` that no stored notification
    carries (lowest to highest missing number), or ``None`` when the inbox has them all.

    Two workers may apply one Subscription's notifications out of order, and the periodic
    check may count events still waiting in the inbox: neither is a lost event.
    """
    missing: list[int] = []
    cursor = first
    for low, high in sorted(deps.stored_events(subscription_id, first, last)):
        if low > cursor:
            missing += [cursor, min(low - 1, last)]
        cursor = max(cursor, high + 1)
        if cursor > last:
            break
    if cursor <= last:
        missing += [cursor, last]
    return (missing[0], missing[-1]) if missing else None


class StoredNotification(Protocol):
    """What applying a notification needs of its inbox row."""

    @property
    def kind(self) -> str: ...
    @property
    def body(self) -> dict[str, Any] | None: ...
    @property
    def received_at(self) -> datetime: ...


def process_notification(
    session: Session,
    deps: SyncDeps,
    row: StoredNotification,
    subscription: Subscription,
    reads: EhrReads,
) -> list[str]:
    """Apply one stored notification from what :func:`read_notification` gathered.

    No EHR call happens here. Returns the references of pushed versions we could not
    order against ours: read them (:func:`read_current`) and apply them afterwards.
    """
    body = row.body
    unordered = apply_reads(session, deps, reads).unordered
    if reads.caught_up:
        repository.advance_events(session, subscription.id, 0, deps.now - deps.skew)
    if row.kind in ("classic-empty", "classic-resource"):
        return unordered
    assert body is not None
    parsed = parse_topic_bundle(body)
    if parsed.kind == "handshake":
        subscription.status = "active"
        subscription.last_error = None
        return unordered
    _close_gap(
        session, deps, subscription, parsed, received_at=row.received_at, stored=reads.gap_stored
    )
    return unordered


def _gap(parsed: ParsedNotification, through: int) -> tuple[int, int] | None:
    """The event numbers we never saw, up to the ones this notification carries."""
    numbers = [e.number for e in parsed.events if e.number is not None]
    lowest = min(numbers) if numbers else None
    highest = max([*numbers, parsed.events_since_start or 0])
    gap_end = (lowest - 1) if lowest is not None else highest
    return (through + 1, gap_end) if gap_end >= through + 1 else None


def _read_events(
    deps: SyncDeps,
    subscription: SubscriptionView,
    events: Iterable[NotificationEvent],
    page_size: int,
    reads: EhrReads,
) -> None:
    needs_search = False
    for event in events:
        if event.resource is not None:
            reads.resources.append((event.resource, False))
        elif event.focus and event.focus in deps.pre_read:
            current = deps.pre_read[event.focus]
            if current is None:
                reads.deleted.append(event.focus)
            else:
                reads.resources.append((current, True))
        elif event.focus:
            _read_focus(deps, event.focus, reads)
        else:
            needs_search = True
    if needs_search:
        found = search_since(deps, subscription.resource_type, subscription.good_through, page_size)
        reads.resources.extend((resource, True) for resource in found)


def _read_catch_up(
    deps: SyncDeps, subscription: SubscriptionView, page_size: int, reads: EhrReads
) -> None:
    found = search_since(deps, subscription.resource_type, subscription.good_through, page_size)
    reads.resources.extend((resource, True) for resource in found)
    reads.caught_up = True


def read_catch_up(deps: SyncDeps, subscription: SubscriptionView, page_size: int) -> EhrReads:
    """A ``_lastUpdated`` search from ``good_through`` (outside any transaction)."""
    reads = EhrReads()
    _read_catch_up(deps, subscription, page_size, reads)
    return reads


def _read_recovery(
    deps: SyncDeps,
    subscription: SubscriptionView,
    first: int,
    last: int,
    page_size: int,
    reads: EhrReads,
) -> None:
    """Missed events with ``$events``; a ``_lastUpdated`` search where that fails."""
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
                _read_events(deps, subscription, parsed.events, page_size, reads)
                return
        except EhrNotSupported:
            log.info(
                "EHR has no $events; searching instead", extra={"subscription": subscription.id}
            )
    _read_catch_up(deps, subscription, page_size, reads)


def _close_gap(
    session: Session,
    deps: SyncDeps,
    subscription: Subscription,
    parsed: ParsedNotification,
    *,
    received_at: datetime,
    stored: bool,
) -> None:
    """Bookkeeping after the events (and any recovery, already applied) are in.

    The counters only grow, in one atomic statement (:func:`repository.advance_events`):
    two workers applying one Subscription's notifications at once never lower them.
    ``stored``: the numbers before this notification's are in the inbox, not lost.
    """
    numbers = [e.number for e in parsed.events if e.number is not None]
    highest = max([*numbers, parsed.events_since_start or 0])
    through = subscription.events_through
    if parsed.status in ("error", "off"):
        subscription.status = parsed.status
    if highest <= through:
        return
    gap = _gap(parsed, through)
    if gap is not None and not stored:
        log.warning(
            "event gap detected",
            extra={"subscription": subscription.id, "from": gap[0], "to": gap[1]},
        )
        repository.advance_events(session, subscription.id, highest, None)
    else:
        repository.advance_events(session, subscription.id, highest, received_at - deps.skew)


def read_recovery(
    deps: SyncDeps, subscription: SubscriptionView, first: int, last: int, page_size: int
) -> EhrReads:
    """Missed events ``first``..``last`` (``$events``, else a search), outside any transaction."""
    reads = EhrReads()
    _read_recovery(deps, subscription, first, last, page_size, reads)
    return reads
