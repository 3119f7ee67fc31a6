"""Creating, checking and repairing the Subscriptions fhir-bridge relies on.

``ensure_subscriptions`` is idempotent: run it twice and the EHR still holds one
Subscription per resource type. Our endpoint URL carries our local id, so a
Subscription found on the EHR can be adopted even by a fresh database.
``check_subscription`` is the periodic health check. It reads the EHR's view and changes
nothing on the EHR while that view is healthy (no re-PUT): a Subscription the EHR set to
``error`` is reactivated and the downtime caught up by search; a topic Subscription whose
heartbeats stopped (an EHR restart forgets them until a new handshake) is re-requested and
caught up the same way; a classic Subscription, which has neither event numbers nor
heartbeats, is caught up by a ``_lastUpdated`` search every
``FHIR_BRIDGE_CLASSIC_CATCH_UP_SECONDS``. A Subscription the EHR keeps putting back in
``error`` is re-requested with exponential backoff (1 min doubling to 1 h, counted on the
row, reset once the EHR reports it ``active``). The check makes no EHR call while a
transaction is open: read the row, talk to the EHR, then one short transaction.

Topic URLs come from ``fhir_bridge.sync.topics``: configured per type, or discovered on the
EHR and checked to fire on create and update; ``ensure_subscriptions`` refuses (one line
per type) rather than subscribe to a topic that would miss a cancellation.

Classic (R4) criteria are search URLs of the ``Type?`` form (``Appointment?``), as the
R4 specification and HAPI FHIR require. Subscriptions created by earlier versions with
the bare ``Appointment`` are still adopted, and rewritten to the ``Type?`` form.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from fhir_bridge.fhir.client import EhrClient
from fhir_bridge.fhir.errors import (
    EhrAuthError,
    EhrError,
    EhrNotFound,
    EhrNotSupported,
    EhrUnavailable,
    outcome_issue_codes,
)
from fhir_bridge.ingest.auth import subscription_token
from fhir_bridge.ingest.parsing import parse_topic_bundle
from fhir_bridge.settings import UserError
from fhir_bridge.store.db import transaction
from fhir_bridge.store.models import Subscription
from fhir_bridge.sync import repository
from fhir_bridge.sync.service import (
    EhrReads,
    SubscriptionView,
    SyncDeps,
    apply_in_short_transactions,
    read_catch_up,
    read_recovery,
    unstored_gap,
)
from fhir_bridge.sync.topics import (
    TopicChoice,
    choose_topics,
    default_topic_url,
    discover_topics,
    read_capabilities,
)

log = logging.getLogger(__name__)

BACKPORT = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition"
BACKPORT_PROFILE = f"{BACKPORT}/backport-subscription"
# Local statuses that mean the EHR will not notify us (``create``/``status`` exit non-zero).
FAILED_STATUSES = ("rejected", "error", "off")
# Re-requesting a Subscription the EHR keeps putting in error backs off: 1 min, doubling, 1 h.
REREQUEST_FIRST_DELAY = timedelta(minutes=1)
REREQUEST_MAX_DELAY = timedelta(hours=1)


class TopicsRefused(UserError):
    """No fitting topic for some resource types; ``lines`` has one line per type."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__("\n".join(lines))
        self.lines = lines


@dataclass(frozen=True)
class SubscriptionPlan:
    """How we want the EHR to notify us (from settings)."""

    kind: str
    payload: str
    public_base_url: str
    topic_base: str
    heartbeat_period: int
    master_secret: str
    # Topic URLs the operator named (FHIR_BRIDGE_SUBSCRIPTION_TOPICS, or an explicitly set
    # topic base): used only if they fit. Types not named here are discovered.
    topics: Mapping[str, str] = field(default_factory=dict)
    classic_catch_up_seconds: int = 300


def endpoint_for(plan: SubscriptionPlan, subscription_id: str) -> str:
    return f"{plan.public_base_url}/notifications/{subscription_id}"


def classic_criteria(resource_type: str) -> str:
    """R4 ``Subscription.criteria`` is a search URL: every change of the type is ``Type?``.

    Unnarrowed on purpose: a status or date filter would hide the very change (a
    cancellation, a reschedule) that must stop or move a reminder.
    """
    return f"{resource_type}?"


def criteria_for(plan: SubscriptionPlan, resource_type: str) -> str:
    """The criteria asked for before discovery: the named topic (else our default), or a
    search URL for classic Subscriptions."""
    if plan.kind == "topic":
        return plan.topics.get(resource_type) or default_topic_url(plan.topic_base, resource_type)
    return classic_criteria(resource_type)


def _reason(resource_type: str) -> str:
    return f"fhir-bridge patient outreach: {resource_type} changes"


def _is_ours(
    plan: SubscriptionPlan, resource_type: str, wanted: str, remote: Mapping[str, Any]
) -> bool:
    """Ours for this type: today's criteria, an earlier version's (bare ``Type``), or an
    earlier topic of ours for the type (named in ``reason``)."""
    criteria = remote.get("criteria")
    if criteria == wanted or (plan.kind == "classic" and criteria == resource_type):
        return True
    is_topic = isinstance(criteria, str) and criteria.startswith(("http://", "https://", "urn:"))
    return plan.kind == "topic" and is_topic and remote.get("reason") == _reason(resource_type)


def resolve_topics(
    ehr: EhrClient, plan: SubscriptionPlan, resource_types: Iterable[str]
) -> list[TopicChoice]:
    """Discover the EHR's topics and choose one per type (refusals carry one line each)."""
    return choose_topics(
        discover_topics(ehr, read_capabilities(ehr)),
        resource_types,
        configured=plan.topics,
        default_url=lambda rt: default_topic_url(plan.topic_base, rt),
    )


def build_subscription_resource(
    plan: SubscriptionPlan,
    subscription_id: str,
    resource_type: str,
    criteria: str | None = None,
) -> dict[str, Any]:
    """The R4 Subscription we ask the EHR to create (Backport IG profile for topics)."""
    criteria = criteria or criteria_for(plan, resource_type)
    token = subscription_token(plan.master_secret, subscription_id)
    channel: dict[str, Any] = {
        "type": "rest-hook",
        "endpoint": endpoint_for(plan, subscription_id),
        "header": [f"Authorization: Bearer {token}"],
    }
    resource: dict[str, Any] = {
        "resourceType": "Subscription",
        "status": "requested",
        "reason": _reason(resource_type),
        "channel": channel,
    }
    if plan.kind == "topic":
        resource["meta"] = {"profile": [BACKPORT_PROFILE]}
        resource["criteria"] = criteria
        channel["payload"] = "application/fhir+json"
        channel["_payload"] = {
            "extension": [
                {"url": f"{BACKPORT}/backport-payload-content", "valueCode": plan.payload}
            ]
        }
        if plan.heartbeat_period:
            channel["extension"] = [
                {
                    "url": f"{BACKPORT}/backport-heartbeat-period",
                    "valueUnsignedInt": plan.heartbeat_period,
                }
            ]
    else:
        resource["criteria"] = criteria
        if plan.payload != "empty":
            channel["payload"] = "application/fhir+json"
    return resource


def ensure_subscriptions(
    sessions: sessionmaker[Session],
    ehr: EhrClient,
    plan: SubscriptionPlan,
    resource_types: tuple[str, ...],
    now: datetime,
) -> list[Subscription]:
    """Create (or adopt, or reactivate) one Subscription per resource type.

    Topic Subscriptions first choose a fitting topic per type; if any type has none,
    :class:`TopicsRefused` is raised before anything is written. A Subscription the EHR
    refuses is recorded with status ``rejected`` and the HTTP status and issue codes.

    No EHR call is made while a transaction is open: each type's row is read in a short
    transaction, the EHR is read and written with none open (on a detached copy of the
    row), then a short transaction records the outcome (:func:`_record_ensured`). Types are
    recorded one by one; a run cut short is finished by the next (it adopts what it made).
    """
    if plan.kind == "topic":
        choices = resolve_topics(ehr, plan, resource_types)
        refusals = [choice.refusal for choice in choices if choice.refusal]
        if refusals:
            raise TopicsRefused(refusals)
        wanted = {choice.resource_type: str(choice.url) for choice in choices}
    else:
        wanted = {rt: classic_criteria(rt) for rt in resource_types}
    return [_ensure_one(sessions, ehr, plan, rt, wanted[rt], now) for rt in resource_types]


def _ensure_one(
    sessions: sessionmaker[Session],
    ehr: EhrClient,
    plan: SubscriptionPlan,
    resource_type: str,
    criteria: str,
    now: datetime,
) -> Subscription:
    with transaction(sessions) as session:
        local = repository.find_subscription(session, resource_type, plan.kind)
    before = (local.status, local.last_error) if local is not None else None
    if local is None:
        local = _adopt_remote(ehr, plan, resource_type, criteria, now)
    if local is not None and local.remote_id:
        try:
            remote: dict[str, Any] | None = ehr.read("Subscription", local.remote_id)
        except EhrNotFound:
            remote = None
        if remote is not None and remote.get("channel", {}).get("endpoint") == local.endpoint:
            try:
                if remote.get("status") in ("error", "off"):
                    remote = _reactivate(ehr, plan, local, remote, criteria)
                elif remote.get("criteria") != criteria:
                    remote = _rewrite_criteria(ehr, plan, local, remote, criteria)
            except EhrError as exc:
                _rejected(local, exc)
                return _record_ensured(sessions, local, before)
            local.criteria = criteria
            _take_remote_state(local, remote)
            return _record_ensured(sessions, local, before)
    if local is None:
        local = _new_row(plan, str(uuid.uuid4()), resource_type, now)
    resource = build_subscription_resource(plan, local.id, resource_type, criteria)
    local.criteria = resource["criteria"]
    local.endpoint = resource["channel"]["endpoint"]
    local.payload = plan.payload
    local.heartbeat_period = _heartbeat_period(plan)
    # Recorded before the EHR hears of it, so the EHR's handshake finds our row.
    reserved = _record_ensured(sessions, local, before)
    before = (reserved.status, reserved.last_error)
    try:
        created = ehr.create(resource)
    except EhrError as exc:
        local.remote_id = None
        _rejected(local, exc)
        return _record_ensured(sessions, local, before)
    # A new Subscription on the EHR numbers its events from 1 again (e.g. the old one was
    # deleted, or a sandbox EHR restarted); what the old one delivered says nothing of it.
    local.events_through = 0
    local.remote_id = created.get("id")
    local.remote_epoch = (local.remote_epoch or 0) + 1
    _take_remote_state(local, created)
    log.info("subscription created", extra={"type": resource_type, "remote_id": local.remote_id})
    return _record_ensured(sessions, local, before)


def _record_ensured(
    sessions: sessionmaker[Session],
    ensured: Subscription,
    before: tuple[str, str | None] | None,
) -> Subscription:
    """One short transaction: what ``ensure_subscriptions`` found and did, onto the row.

    A row not stored yet (new, adopted) is inserted. Otherwise only what ``create`` owns is
    copied; status and error are taken only if no notification (a handshake) changed them
    since ``before`` was read, and the event count restarts only with a new remote
    Subscription. Returns the row as committed.
    """
    with transaction(sessions) as session:
        row = repository.get_subscription_for_update(session, ensured.id)
        if row is None:
            return session.merge(ensured)
        row.criteria, row.endpoint = ensured.criteria, ensured.endpoint
        row.payload, row.heartbeat_period = ensured.payload, ensured.heartbeat_period
        if (row.remote_id, row.remote_epoch) != (ensured.remote_id, ensured.remote_epoch):
            row.remote_id, row.events_through = ensured.remote_id, ensured.events_through
            row.remote_epoch = ensured.remote_epoch
        if before is None or (row.status, row.last_error) == before:
            row.status, row.last_error = ensured.status, ensured.last_error
        row.rerequested_at, row.rerequest_count = ensured.rerequested_at, ensured.rerequest_count
        return row


def _heartbeat_period(plan: SubscriptionPlan) -> int:
    """Classic Subscriptions have no heartbeats, so nothing to miss."""
    return plan.heartbeat_period if plan.kind == "topic" else 0


def _rejected(local: Subscription, exc: EhrError) -> None:
    """The EHR refused a write of our Subscription: say so, by status and issue codes only."""
    if isinstance(exc, EhrUnavailable | EhrAuthError):
        raise exc
    codes = outcome_issue_codes(exc.outcome)
    local.status = "rejected"
    local.last_error = (f"HTTP {exc.status}" + (f" ({', '.join(codes)})" if codes else ""))[:200]
    log.warning(
        "the EHR rejected our Subscription",
        extra={"type": local.resource_type, "status": exc.status},
    )


def _take_remote_state(local: Subscription, remote: Mapping[str, Any]) -> None:
    """Our row shows what the EHR says: its status and its error text (clipped).

    Active again: the re-request backoff starts over.
    """
    local.status = _local_status(remote.get("status"))
    error = remote.get("error")
    if local.status in ("error", "off"):
        local.last_error = str(error or local.status)[:200]
    elif local.status == "active":
        local.last_error = None
        local.rerequested_at, local.rerequest_count = None, 0


def _adopt_remote(
    ehr: EhrClient,
    plan: SubscriptionPlan,
    resource_type: str,
    criteria: str,
    now: datetime,
) -> Subscription | None:
    """Find a Subscription of ours on the EHR (by endpoint prefix): a row not stored yet."""
    prefix = f"{plan.public_base_url}/notifications/"
    for remote in ehr.search_all("Subscription", {"_count": "100"}):
        endpoint = (remote.get("channel") or {}).get("endpoint") or ""
        if not endpoint.startswith(prefix) or not _is_ours(plan, resource_type, criteria, remote):
            continue
        local = _new_row(plan, endpoint[len(prefix) :], resource_type, now)
        local.criteria = str(remote.get("criteria") or criteria)
        local.endpoint = endpoint
        local.remote_id = remote.get("id")
        return local
    return None


def _new_row(
    plan: SubscriptionPlan,
    subscription_id: str,
    resource_type: str,
    now: datetime,
) -> Subscription:
    local = Subscription(
        id=subscription_id,
        resource_type=resource_type,
        kind=plan.kind,
        payload=plan.payload,
        criteria="",
        endpoint="",
        status="requested",
        heartbeat_period=_heartbeat_period(plan),
        events_through=0,
        good_through=now,
        created_at=now,
        notifications_rejected=0,
        rerequest_count=0,
    )
    return local


def _local_status(remote_status: Any) -> str:
    return str(remote_status or "requested")[:16]


def _rewrite_criteria(
    ehr: EhrClient,
    plan: SubscriptionPlan,
    local: Subscription,
    remote: dict[str, Any],
    criteria: str,
) -> dict[str, Any]:
    """Bring a Subscription of ours up to today's criteria (e.g. ``Appointment?``, a topic)."""
    log.info(
        "subscription criteria updated",
        extra={"subscription": local.id, "remote_id": remote.get("id")},
    )
    keep_active = plan.kind == "classic" and remote.get("status") == "active"
    return _put(ehr, plan, local, remote, criteria, active=keep_active)


def _reactivate(
    ehr: EhrClient,
    plan: SubscriptionPlan,
    local: Subscription,
    remote: dict[str, Any],
    criteria: str,
) -> dict[str, Any]:
    log.warning(
        "subscription was in error; reactivating",
        extra={"subscription": local.id, "remote_status": remote.get("status")},
    )
    local.last_error = str(remote.get("error") or remote.get("status"))[:200]
    return _request_again(ehr, plan, local, remote, criteria)


def _request_again(
    ehr: EhrClient,
    plan: SubscriptionPlan,
    local: Subscription,
    remote: Mapping[str, Any],
    criteria: str,
) -> dict[str, Any]:
    """PUT our Subscription back as ``requested`` (topic: the EHR handshakes anew)."""
    return _put(ehr, plan, local, remote, criteria, active=plan.kind == "classic")


def _put(
    ehr: EhrClient,
    plan: SubscriptionPlan,
    local: Subscription,
    remote: Mapping[str, Any],
    criteria: str,
    *,
    active: bool,
) -> dict[str, Any]:
    """PUT our Subscription over the EHR's (``active``: a classic one asks to stay active)."""
    resource = build_subscription_resource(plan, local.id, local.resource_type, criteria)
    resource["id"] = remote["id"]
    if active:
        resource["status"] = "active"
    return ehr.update(resource) or resource


def check_all(
    sessions: sessionmaker[Session],
    deps_at: Callable[[], SyncDeps],
    ehr: EhrClient,
    plan: SubscriptionPlan,
    page_size: int,
) -> dict[str, str]:
    """Health-check every Subscription (:func:`check_subscription`); outcome per type."""
    with transaction(sessions) as session:
        ids = [row.id for row in repository.list_subscriptions(session)]
    results = {}
    for subscription_id in ids:
        checked = check_subscription(
            sessions, deps_at(), ehr, plan, subscription_id, page_size=page_size
        )
        if checked is not None:
            results[checked[0]] = checked[1]
    return results


def check_subscription(
    sessions: sessionmaker[Session],
    deps: SyncDeps,
    ehr: EhrClient,
    plan: SubscriptionPlan,
    subscription_id: str,
    *,
    page_size: int,
) -> tuple[str, str] | None:
    """Periodic health check of one Subscription: (its resource type, what was found and done).

    ``ok``; ``requested`` (handshake pending); ``gap`` (missed events recovered);
    ``reactivated`` (the EHR had it in error); ``backing-off`` (still in error; the next
    re-request waits, see :func:`next_rerequest_at`); ``heartbeat-late`` (heartbeats
    stopped: re-requested and caught up by search); ``caught-up`` (classic periodic search);
    ``missing`` (not on the EHR); ``rejected`` (the EHR refused our repair). A healthy
    Subscription is only read, never written.

    Short transactions: the row is read, every EHR call is made with no transaction open
    (on a detached copy of the row), then one short transaction applies what was read and
    records the check on the row as it is by then (:func:`_record_check`).
    """
    with transaction(sessions) as session:
        seen = repository.get_subscription(session, subscription_id)
    if seen is None:
        return None
    before = (seen.status, seen.last_error)
    reads = EhrReads()
    outcome = _check(deps, ehr, plan, seen, page_size, reads)
    apply_in_short_transactions(
        sessions, deps, reads, then=lambda session: _record_check(session, seen, before)
    )
    return seen.resource_type, outcome


def _record_check(session: Session, seen: Subscription, before: tuple[str, str | None]) -> None:
    """Copy a check's findings onto the row, which notifications may have moved meanwhile.

    Event counts and ``good_through`` only grow; status and error are taken only if no
    notification (a handshake) changed them since the check read the row.
    """
    row = repository.get_subscription_for_update(session, seen.id)
    if row is None:
        return
    row.last_checked_at = seen.last_checked_at
    row.events_through = max(row.events_through, seen.events_through)
    if seen.good_through is not None and (
        row.good_through is None or seen.good_through > row.good_through
    ):
        row.good_through = seen.good_through
    if (row.status, row.last_error) == before:
        row.status, row.last_error = seen.status, seen.last_error
    row.rerequested_at, row.rerequest_count = seen.rerequested_at, seen.rerequest_count


def _check(
    deps: SyncDeps,
    ehr: EhrClient,
    plan: SubscriptionPlan,
    subscription: Subscription,
    page_size: int,
    reads: EhrReads,
) -> str:
    """The EHR side of a check: updates the detached ``subscription``, gathers ``reads``."""
    subscription.last_checked_at = deps.now
    if not subscription.remote_id:
        return "missing"
    try:
        remote = ehr.read("Subscription", subscription.remote_id)
    except EhrNotFound:
        subscription.status = "off"
        subscription.last_error = "not on the EHR"
        return "missing"
    criteria = subscription.criteria or criteria_for(plan, subscription.resource_type)
    if remote.get("status") in ("error", "off"):
        return _reactivate_when_due(
            deps, ehr, plan, subscription, remote, criteria, page_size, reads
        )
    _take_remote_state(subscription, remote)
    if subscription.kind != "topic":
        return _classic_catch_up(deps, plan, subscription, page_size, reads)
    events_since = _remote_event_count(deps, subscription)
    missing = (
        unstored_gap(deps, subscription.id, subscription.events_through + 1, events_since)
        if events_since is not None and events_since > subscription.events_through
        else None
    )
    if missing is not None:
        # Only what no stored notification carries: a backlog in the inbox is not a gap.
        assert events_since is not None
        view = SubscriptionView.of(subscription)
        recovered = read_recovery(deps, view, missing[0], missing[1], page_size)
        reads.extend(recovered)
        if recovered.caught_up:
            subscription.good_through = deps.now - deps.skew
        subscription.events_through = events_since
        return "gap"
    if subscription.status == "requested":
        return "requested"
    if _heartbeat_overdue(subscription, deps.now):
        log.warning(
            "heartbeat overdue; re-requesting the subscription and searching",
            extra={"subscription": subscription.id},
        )
        try:
            repaired = _request_again(ehr, plan, subscription, remote, criteria)
        except EhrError as exc:
            _rejected(subscription, exc)
            return "rejected"
        _catch_up(deps, subscription, page_size, events_since, reads)
        subscription.status = _local_status(repaired.get("status"))
        return "heartbeat-late"
    return "ok"


def _reactivate_when_due(
    deps: SyncDeps,
    ehr: EhrClient,
    plan: SubscriptionPlan,
    subscription: Subscription,
    remote: dict[str, Any],
    criteria: str,
    page_size: int,
    reads: EhrReads,
) -> str:
    """The EHR has it in error (or off): re-request it, backing off while it stays there."""
    due = next_rerequest_at(subscription)
    if due is not None and deps.now < due:
        _take_remote_state(subscription, remote)
        return "backing-off"
    # Counted before the search, so every event it names is covered by the search.
    counted = _remote_event_count(deps, subscription)
    try:
        repaired = _reactivate(ehr, plan, subscription, remote, criteria)
    except EhrError as exc:
        _rejected(subscription, exc)
        return "rejected"
    subscription.rerequested_at = deps.now
    subscription.rerequest_count = (subscription.rerequest_count or 0) + 1
    _catch_up(deps, subscription, page_size, counted, reads)
    subscription.status = _local_status(repaired.get("status"))
    return "reactivated"


def rerequest_delay(count: int) -> timedelta:
    """The wait after ``count`` re-requests in a row (the EHR kept putting it back in error):
    1 min, 2, 4, … capped at 1 h."""
    if count <= 0:
        return timedelta(0)
    return min(REREQUEST_FIRST_DELAY * 2 ** min(count - 1, 12), REREQUEST_MAX_DELAY)


def next_rerequest_at(subscription: Subscription) -> datetime | None:
    """When a Subscription still in error may be re-requested again (None: at once)."""
    if not subscription.rerequest_count or subscription.rerequested_at is None:
        return None
    return subscription.rerequested_at + rerequest_delay(subscription.rerequest_count)


def _catch_up(
    deps: SyncDeps,
    subscription: Subscription,
    page_size: int,
    counted: int | None,
    reads: EhrReads,
) -> None:
    """Search what changed since we last had everything; the search covers ``counted``."""
    reads.extend(read_catch_up(deps, SubscriptionView.of(subscription), page_size))
    subscription.good_through = deps.now - deps.skew
    subscription.events_through = max(subscription.events_through, counted or 0)


def _classic_catch_up(
    deps: SyncDeps,
    plan: SubscriptionPlan,
    subscription: Subscription,
    page_size: int,
    reads: EhrReads,
) -> str:
    """Classic Subscriptions cannot show a lost notification: search every so often."""
    due = timedelta(seconds=plan.classic_catch_up_seconds)
    since = subscription.good_through
    if since is not None and deps.now - since < due:
        return "ok"
    _catch_up(deps, subscription, page_size, None, reads)
    return "caught-up"


def _heartbeat_overdue(subscription: Subscription, now: datetime) -> bool:
    """No notification for two heartbeat periods (plus a little grace); topic only."""
    if subscription.kind != "topic":
        return False
    if not subscription.heartbeat_period or subscription.last_notification_at is None:
        return False
    allowed = timedelta(seconds=2 * subscription.heartbeat_period + 5)
    return now - subscription.last_notification_at > allowed


def _remote_event_count(deps: SyncDeps, subscription: Subscription) -> int | None:
    """Events the EHR counts since the Subscription started (``$status``), if it says."""
    if subscription.kind != "topic":
        return None
    try:
        status_bundle = deps.ehr.operation(f"Subscription/{subscription.remote_id}/$status")
    except EhrNotSupported:
        return None
    return _events_since(status_bundle)


def _events_since(status_bundle: dict[str, Any]) -> int | None:
    """``$status`` answers a searchset Bundle holding one status resource."""
    for entry in status_bundle.get("entry") or []:
        resource = entry.get("resource") or {}
        if resource.get("resourceType") in ("Parameters", "SubscriptionStatus"):
            wrapped = {"type": "history", "entry": [{"resource": resource}]}
            return parse_topic_bundle(wrapped).events_since_start
    return None
