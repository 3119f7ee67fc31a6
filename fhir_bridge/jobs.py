"""The units of background work, as plain functions of a :class:`Runtime`.

Celery tasks (``fhir_bridge.tasks``) and the CLI are thin shells over these.
Each job re-reads its row, claims it, and skips work that is stale or already
done, so any job may run twice or crash half-way without harm.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from fhir_bridge.fhir.client import is_readable_reference
from fhir_bridge.fhir.errors import EhrError
from fhir_bridge.fhir.resources import patient_reference
from fhir_bridge.inbound.jobs import status_callback_url
from fhir_bridge.ingest import repository as inbox_repository
from fhir_bridge.ingest.parsing import InvalidNotification, parse_topic_bundle
from fhir_bridge.optout import email_unsubscribe_links
from fhir_bridge.outreach import repository as message_repository
from fhir_bridge.outreach.communication import WritebackOptions
from fhir_bridge.outreach.delivery import DeliveryDeps, deliver, reconcile_abandoned
from fhir_bridge.outreach.planning import Planner, replan_patient
from fhir_bridge.outreach.snapshot import ReferenceSource, fetch_many, prefetch_references
from fhir_bridge.outreach.writeback import write_communication
from fhir_bridge.runtime import Runtime
from fhir_bridge.settings import SUBSCRIBED_TYPES
from fhir_bridge.store.db import transaction
from fhir_bridge.sync import polling
from fhir_bridge.sync import repository as sync_repository
from fhir_bridge.sync.service import (
    SubscriptionView,
    SyncDeps,
    apply_in_short_transactions,
    apply_reads,
    apply_resource,
    forget_resource,
    process_notification,
    read_current,
    read_notification,
    read_recovery,
)
from fhir_bridge.sync.subscriptions import SubscriptionPlan, check_all
from fhir_bridge.sync.topics import named_topics
from rules.engine import plan_for_patient

log = logging.getLogger(__name__)

MAX_NOTIFICATION_ATTEMPTS = 10


def patient_changed_hook(
    rt: Runtime, now: datetime, planner: Planner = plan_for_patient
) -> Callable[[Session, str], None]:
    """Re-plan a patient's outreach from our store (fetching the Patient once if unknown).

    A message already due is claimed in the same transaction and handed to delivery right
    after it commits (``tasks.session_after_commit``), not at the next dispatch poll.
    """

    def on_patient_changed(session: Session, patient_ref: str) -> None:
        patient = _patient_for(session, rt, patient_ref, now)
        due_now: list[str] = []
        replan_patient(
            session,
            patient_ref=patient_ref,
            patient=patient,
            config=rt.rules,
            now=now,
            source=reference_source(rt),
            due_now=due_now,
            planner=planner,
        )
        if due_now:
            _deliver_after_commit(rt, session, due_now, now)

    return on_patient_changed


def _deliver_after_commit(rt: Runtime, session: Session, ids: list[str], now: datetime) -> None:
    from fhir_bridge.tasks import session_after_commit

    after = session_after_commit(session)
    for message_id in message_repository.claim_batch(session, now, rt.lease, ids=ids):
        after.add("fhir_bridge.deliver", message_id)


def _patient_for(
    session: Session, rt: Runtime, patient_ref: str, now: datetime
) -> dict[str, Any] | None:
    _, _, patient_id = patient_ref.partition("/")
    state = sync_repository.get_state(session, "Patient", patient_id)
    if state is not None:
        return state.body
    if not is_readable_reference(patient_ref):
        return None  # no FHIR server could answer it: planned without the Patient
    try:
        patient = rt.ehr.read("Patient", patient_id)
    except EhrError:
        return None
    _save_patient(session, patient_ref, patient, now)
    return patient


def _save_patient(
    session: Session, patient_ref: str, patient: dict[str, Any], now: datetime
) -> None:
    """Keep a Patient read from the EHR (the version it says it is)."""
    sync_repository.save_state(
        session,
        None,
        resource=patient,
        version_id=(patient.get("meta") or {}).get("versionId"),
        last_updated=None,
        patient_ref=patient_ref,
        now=now,
    )


def reference_source(rt: Runtime) -> ReferenceSource:
    """Where planning and delivery read Locations, Practitioners, Medications… from."""
    return ReferenceSource(ehr=rt.ehr, ttl=timedelta(seconds=rt.settings.reference_ttl_seconds))


def _prefetch_for_resources(rt: Runtime, resources: list[dict[str, Any]], now: datetime) -> None:
    """Read what the resources refer to, and their unknown Patients, before applying them:
    the store asked once per level, the EHR once for what the store lacks (``fetch_many``)."""
    if not resources:
        return
    prefetch_references(rt.sessions, reference_source(rt), resources, now)
    patient_refs = sorted({ref for ref in map(patient_reference, resources) if ref is not None})
    if not patient_refs:
        return
    with transaction(rt.sessions) as session:
        known = sync_repository.get_states(session, patient_refs)
    unknown = [ref for ref in patient_refs if ref not in known]
    if not unknown:
        return
    read = fetch_many(rt.ehr, unknown)
    with transaction(rt.sessions) as session:
        for patient_ref, patient in read.items():
            if isinstance(patient, dict):  # else not there, or unreachable: read again or without
                _save_patient(session, patient_ref, patient, now)


def sync_deps(
    rt: Runtime, now: datetime, pre_read: Mapping[str, dict[str, Any] | None] | None = None
) -> SyncDeps:
    return SyncDeps(
        pre_read=pre_read or {},
        ehr=rt.ehr,
        now=now,
        skew=rt.skew,
        on_patient_changed=patient_changed_hook(rt, now),
        prefetch=lambda resources: _prefetch_for_resources(rt, resources, now),
        stored_events=lambda subscription_id, first, last: _stored_events(
            rt, subscription_id, first, last
        ),
    )


def _stored_events(
    rt: Runtime, subscription_id: str, first: int, last: int
) -> list[tuple[int, int]]:
    with transaction(rt.sessions) as session:
        return sync_repository.stored_event_ranges(session, subscription_id, first, last)


def _recover_events_of_unapplied(rt: Runtime, deps: SyncDeps, inbox_id: int) -> None:
    """A notification ended rejected or abandoned: its events were never applied.

    Other notifications may have counted them as on their way (stored in the inbox) and
    moved ``events_through`` past them, so nothing else would ask for them again: recover
    them from the EHR (``$events``, else a search) now. Never raises.
    """
    try:
        with transaction(rt.sessions) as session:
            row = inbox_repository.get(session, inbox_id)
            if row is None or row.event_first is None or row.event_last is None:
                return
            subscription = (
                sync_repository.get_subscription(session, row.subscription_id)
                if row.subscription_id
                else None
            )
            if subscription is None or subscription.events_through < row.event_first:
                return  # not skipped: the next notification or check sees the gap
            view = SubscriptionView.of(subscription)
            first, last = row.event_first, row.event_last
        reads = read_recovery(deps, view, first, last, rt.settings.poll_page_size)
        apply_in_short_transactions(rt.sessions, deps, reads)
    except Exception as exc:
        log.error(
            "events of an unapplied notification could not be recovered",
            extra={"inbox_id": inbox_id, "error": type(exc).__name__},
        )


@dataclass(frozen=True)
class ClaimedNotification:
    """An inbox row this worker claimed, as the claim returned it."""

    id: int
    subscription_id: str | None
    kind: str
    body: dict[str, Any] | None
    received_at: datetime
    attempts: int


CLAIM_CHUNK = 25
"""Notifications claimed per statement and read ahead together: enough that a busy
wake-up's notifications share one EHR round-trip per kind of read, few enough that the
last one's lease is far from expiry by the time its turn comes (about 10 ms each)."""


def process_inbox(rt: Runtime, inbox_id: int) -> str:
    """Apply one stored notification (:func:`process_inbox_batch` of one)."""
    return process_inbox_batch(rt, [inbox_id])[inbox_id]


def process_inbox_batch(rt: Runtime, inbox_ids: Sequence[int]) -> dict[int, str]:
    """Apply stored notifications in order; failures go back to the inbox for the relay.

    Claims ``CLAIM_CHUNK`` rows per statement and reads their Subscriptions with it, then
    applies each on its own (read from the EHR with no transaction open, then one short
    transaction), so one notification's failure never decides another's. Outcome per id:
    done, orphan, invalid, retry, failed, skipped (another worker has it, or it is done),
    or error (unexpected; its row stays leased and the relay retries it).
    """
    outcomes = dict.fromkeys(inbox_ids, "skipped")
    for start in range(0, len(inbox_ids), CLAIM_CHUNK):
        chunk = inbox_ids[start : start + CLAIM_CHUNK]
        claimed, views = _claim_chunk(rt, chunk)
        ahead = _read_ahead(rt, claimed, views)
        for row in claimed:
            try:
                outcome = _process_claimed(rt, row, views.get(row.subscription_id or ""), ahead)
            except Exception:
                log.exception("notification processing failed", extra={"inbox_id": row.id})
                outcome = "error"
            outcomes[row.id] = outcome
            view = views.get(row.subscription_id or "")
            if outcome == "done" and view is not None:
                # What this one applied raised the Subscription's count: the next ones in the
                # chunk judge their gaps against that, not the count before the chunk.
                views[view.id] = _after(view, row)
    return outcomes


def _claim_chunk(
    rt: Runtime, inbox_ids: Sequence[int]
) -> tuple[list[ClaimedNotification], dict[str, SubscriptionView]]:
    now = rt.clock()
    with transaction(rt.sessions) as session:
        claimed = [
            ClaimedNotification(
                row.id, row.subscription_id, row.kind, row.body, row.received_at, row.attempts
            )
            for row in inbox_repository.claim_many(session, inbox_ids, now, rt.lease)
        ]
        subscription_ids = {row.subscription_id for row in claimed if row.subscription_id}
        views = {
            subscription.id: SubscriptionView.of(subscription)
            for subscription in sync_repository.get_subscriptions(session, subscription_ids)
        }
    return claimed, views


_TOPIC_KINDS = ("event-notification", "query-event")


@dataclass(frozen=True)
class ReadAhead:
    """What a chunk's notifications need from the EHR, read together before any is applied:
    the current versions of their id-only focuses (``None``: the EHR does not have it), and
    which resource versions already had their references and Patients prefetched."""

    current: Mapping[str, dict[str, Any] | None]
    prefetched: frozenset[tuple[Any, ...]]


NOTHING_READ_AHEAD = ReadAhead({}, frozenset())


def _version_key(resource: Mapping[str, Any]) -> tuple[Any, ...]:
    meta = resource.get("meta")
    meta = meta if isinstance(meta, dict) else {}
    return (
        resource.get("resourceType"),
        resource.get("id"),
        meta.get("versionId"),
        meta.get("lastUpdated"),
    )


def _read_ahead(
    rt: Runtime, claimed: Sequence[ClaimedNotification], views: Mapping[str, SubscriptionView]
) -> ReadAhead:
    """Read the chunk's id-only focuses in one go (one ``batch``, or side by side), then
    prefetch what they and the pushed resources refer to, and their Patients, together.

    Best effort and never raises: a notification whose focus is not here reads it on its
    own (and fails or retries on its own), exactly as without the read-ahead. Versions read
    here are the EHR's current ones, as a read in the notification's own job would be.
    """
    if len(claimed) < 2:
        return NOTHING_READ_AHEAD
    focuses: list[str] = []
    pushed: list[dict[str, Any]] = []
    for row in claimed:
        if row.subscription_id not in views or row.body is None:
            continue
        if row.kind == "classic-resource":
            pushed.append(row.body)
        if row.kind not in _TOPIC_KINDS:
            continue
        try:
            events = parse_topic_bundle(row.body).events
        except InvalidNotification:
            continue  # rejected by its own job, with the reason
        for event in events:
            if event.resource is not None:
                pushed.append(event.resource)
            elif event.focus and is_readable_reference(event.focus):
                focuses.append(event.focus)
    now = rt.clock()
    current: dict[str, dict[str, Any] | None] = {}
    try:
        if len(set(focuses)) > 1:
            current = rt.ehr.read_many(focuses)
        resources = [*pushed, *(resource for resource in current.values() if resource)]
        _prefetch_for_resources(rt, resources, now)
    except Exception as exc:  # each notification reads and prefetches on its own instead
        log.warning("read-ahead skipped", extra={"error": type(exc).__name__})
        return ReadAhead(current, frozenset())
    return ReadAhead(current, frozenset(map(_version_key, resources)))


def _after(view: SubscriptionView, row: ClaimedNotification) -> SubscriptionView:
    if row.kind not in ("event-notification", "query-event", "heartbeat") or row.body is None:
        return view
    parsed = parse_topic_bundle(row.body)
    numbers = [e.number for e in parsed.events if e.number is not None]
    highest = max([*numbers, parsed.events_since_start or 0])
    return replace(view, events_through=max(view.events_through, highest))


def _process_claimed(
    rt: Runtime,
    row: ClaimedNotification,
    view: SubscriptionView | None,
    ahead: ReadAhead = NOTHING_READ_AHEAD,
) -> str:
    now = rt.clock()
    if row.attempts > MAX_NOTIFICATION_ATTEMPTS:
        with transaction(rt.sessions) as session:
            inbox_repository.mark_failed(session, row.id, now, "gave-up", final=True)
        log.error("notification abandoned after repeated failures", extra={"inbox_id": row.id})
        _recover_events_of_unapplied(rt, sync_deps(rt, now), row.id)
        return "failed"
    deps = sync_deps(rt, now, ahead.current)
    try:
        if view is None:
            reads = None
        else:
            # Read first (no transaction open), then apply in one short transaction.
            reads = read_notification(
                deps, row.kind, row.body, view, page_size=rt.settings.poll_page_size
            )
            not_yet = [r for r in reads.all_resources() if _version_key(r) not in ahead.prefetched]
            _prefetch_for_resources(rt, not_yet, now)
        with transaction(rt.sessions) as session:
            subscription = (
                sync_repository.get_subscription(session, row.subscription_id)
                if row.subscription_id
                else None
            )
            if subscription is None or reads is None:
                inbox_repository.mark_done_by_id(session, row.id, now)
                return "orphan"
            unordered = process_notification(session, deps, row, subscription, reads)
            if not unordered:
                inbox_repository.mark_done_by_id(session, row.id, now)
        if unordered:
            # Versions we could not order against ours: the EHR's current one decides.
            current = read_current(deps, unordered)
            _prefetch_for_resources(rt, current.all_resources(), now)
            with transaction(rt.sessions) as session:
                apply_reads(session, deps, current)
                inbox_repository.mark_done_by_id(session, row.id, now)
    except InvalidNotification as exc:
        # Full validation happens here, not in the API: record why, count it against the
        # Subscription (the reason names fields and codes, never values).
        with transaction(rt.sessions) as session:
            inbox_repository.mark_rejected(session, row.id, now, f"invalid:{exc.code}: {exc}")
        log.warning(
            "notification rejected", extra={"inbox_id": row.id, "reason": f"invalid:{exc.code}"}
        )
        _recover_events_of_unapplied(rt, deps, row.id)
        return "invalid"
    except EhrError as exc:
        final = row.attempts >= MAX_NOTIFICATION_ATTEMPTS
        with transaction(rt.sessions) as session:
            inbox_repository.mark_failed(session, row.id, now, f"ehr:{exc.status}", final=final)
        log.warning("notification processing deferred", extra={"inbox_id": row.id})
        if final:
            _recover_events_of_unapplied(rt, deps, row.id)
        return "retry"
    return "done"


def inbox_to_relay(rt: Runtime, limit: int = 500) -> list[int]:
    """Notifications stored but never (or long ago) handed to the queue."""
    now = rt.clock()
    with transaction(rt.sessions) as session:
        ids = list(inbox_repository.due_for_relay(session, now, rt.lease, limit))
        inbox_repository.mark_enqueued(session, ids, now)
    return ids


def claim_due_messages(rt: Runtime, limit: int = 2000) -> list[str]:
    """Claim due messages for delivery in one statement (each by exactly one dispatcher)."""
    now = rt.clock()
    with transaction(rt.sessions) as session:
        return message_repository.claim_batch(session, now, rt.lease, limit=limit)


def forget_inbox_enqueued(rt: Runtime, inbox_ids: list[int]) -> None:
    """The broker did not take these: the relay takes them again on its next tick."""
    with transaction(rt.sessions) as session:
        inbox_repository.forget_enqueued(session, inbox_ids)


def refresh_subscription_clocks(rt: Runtime) -> None:
    """Each Subscription's last notification and heartbeat, derived from the inbox."""
    with transaction(rt.sessions) as session:
        inbox_repository.refresh_subscription_clocks(session)


def writebacks_to_relay(rt: Runtime, limit: int = 500) -> list[str]:
    """Communications not yet written a few seconds after their message settled, and not
    handed to the queue within a lease (a lost task, a killed worker); marked as handed."""
    now = rt.clock()
    older_than = now - timedelta(seconds=rt.settings.relay_interval_seconds)
    with transaction(rt.sessions) as session:
        ids = list(
            message_repository.pending_writebacks(
                session, older_than, limit, enqueued_before=now - rt.lease
            )
        )
        message_repository.mark_writebacks_enqueued(session, ids, now)
    return ids


def delivery_deps(rt: Runtime) -> DeliveryDeps:
    def refresh(
        session: Session, resources: list[dict[str, Any]], patient: dict[str, Any] | None
    ) -> None:
        deps = sync_deps(rt, rt.clock())
        if patient is not None:
            apply_resource(session, deps, patient)
        for resource in resources:
            if resource.get("_deleted"):
                forget_resource(session, deps, resource["resourceType"], resource["id"])
            else:
                apply_resource(session, deps, resource)

    return DeliveryDeps(
        factory=rt.sessions,
        ehr=rt.ehr,
        adapters=rt.adapters,
        config=rt.rules,
        clock=rt.clock,
        lease=rt.lease,
        max_attempts=rt.settings.max_send_attempts,
        refresh=refresh,
        status_callback_url=lambda message_id: status_callback_url(rt, message_id),
        list_unsubscribe=lambda message_id: email_unsubscribe_links(
            rt.settings, message_id, rt.clock
        ),
        fallback=rt.settings.channel_fallback,
        references=reference_source(rt),
    )


def deliver_message(rt: Runtime, message_id: str) -> str:
    return deliver(delivery_deps(rt), message_id)


def reconcile(rt: Runtime) -> dict[str, int]:
    return reconcile_abandoned(delivery_deps(rt))


def writeback_options(rt: Runtime) -> WritebackOptions:
    return WritebackOptions(
        identifier_system=rt.settings.communication_identifier_system,
        sender_reference=rt.settings.sender_reference or rt.settings.clinic_reference,
    )


def write_back(rt: Runtime, message_id: str) -> str:
    """Short transactions around the EHR create (``outreach.writeback``)."""
    return write_communication(
        rt.sessions,
        rt.ehr,
        message_id,
        writeback_options(rt),
        ehr_writes=rt.settings.ehr_writes_communication,
    )


def write_back_after_delivery(rt: Runtime, message_id: str) -> str:
    """The write-back right after a delivery committed, in the delivering task.

    Saves a queue round-trip per message. If the EHR does not answer now, the row stays
    ``pending`` and the relay hands it to ``write_communication`` (the one retry layer).
    """
    try:
        return write_back(rt, message_id)
    except EhrError as exc:
        log.warning(
            "write-back deferred to the relay",
            extra={"message_id": message_id, "error": f"ehr:{exc.status}"},
        )
        return "deferred"


def subscription_plan(rt: Runtime) -> SubscriptionPlan:
    settings = rt.settings
    return SubscriptionPlan(
        kind=settings.subscription_kind,
        payload=settings.subscription_payload,
        public_base_url=settings.public_base_url,
        topic_base=settings.subscription_topic_base,
        heartbeat_period=settings.heartbeat_period_seconds,
        master_secret=settings.require_notification_secret(),
        topics=named_topics(settings),
        classic_catch_up_seconds=settings.classic_catch_up_seconds,
    )


def check_subscriptions(rt: Runtime) -> dict[str, str]:
    """Health-check every Subscription; reactivate and catch up where needed."""
    refresh_subscription_clocks(rt)  # silence is judged from the inbox, not the API
    return check_all(
        rt.sessions,
        lambda: sync_deps(rt, rt.clock()),
        rt.ehr,
        subscription_plan(rt),
        rt.settings.poll_page_size,
    )


def poll(rt: Runtime) -> dict[str, int]:
    """Polling mode, searching as ``FHIR_BRIDGE_POLL_SEARCH`` says (``fhir_bridge.sync.polling``).

    ``system``: each type by ``_lastUpdated`` from a persistent watermark. ``per-location`` /
    ``per-day``: the upcoming Appointment window, re-read whole (idempotent). A search the
    EHR refuses raises :class:`PollSearchRefused`, one line naming the setting to change.
    """
    mode = rt.settings.poll_search
    if mode != "system":
        return _poll_window(rt, mode)
    return polling.poll_system(
        rt.sessions, lambda: sync_deps(rt, rt.clock()), SUBSCRIBED_TYPES, rt.settings.poll_page_size
    )


def _poll_window(rt: Runtime, mode: str) -> dict[str, int]:
    """Read the upcoming Appointments per location or per day; re-check those that left."""
    started = rt.clock()
    settings = rt.settings
    window = polling.PollWindow.around(started, settings.poll_window_days)
    locations = (
        polling.poll_locations(settings.poll_locations, rt.rules.locations)
        if mode == "per-location"
        else None
    )
    searches = polling.window_searches(mode, window, locations or [], settings.poll_page_size)
    applied = polling.poll_window(
        rt.sessions, lambda: sync_deps(rt, rt.clock()), mode, searches, window, locations
    )
    log.debug("window poll done", extra={"kind": mode, "count": applied})
    return {"Appointment": applied}


def queue_ages(rt: Runtime) -> dict[str, int | None]:
    """Seconds the oldest unprocessed item of each kind of work has waited (None: empty)."""
    from fhir_bridge.store import worklist

    with transaction(rt.sessions) as session:
        return worklist.queue_ages(session, rt.clock())


def warn_about_stalls(rt: Runtime) -> dict[str, int]:
    """One WARNING per queue whose oldest item waited past ``FHIR_BRIDGE_STALL_SECONDS``."""
    from fhir_bridge.store import worklist

    stalled = worklist.stalled_queues(queue_ages(rt), rt.settings.stall_seconds)
    for queue, age in stalled.items():
        log.warning("work queue stalled: %s (oldest item waiting %d s)", queue, age)
    return stalled
