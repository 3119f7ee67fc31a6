"""Creating, checking and repairing the Subscriptions fhir-bridge relies on.

``ensure_subscriptions`` is idempotent: run it twice and the EHR still holds one
Subscription per resource type. Our endpoint URL carries our local id, so a
Subscription found on the EHR can be adopted even by a fresh database.
``check_subscription`` is the periodic health check: a Subscription the EHR
set to ``error`` is reactivated and the downtime caught up by search.

Classic (R4) criteria are search URLs of the ``Type?`` form (``Appointment?``), as the
R4 specification and HAPI FHIR require. Subscriptions created by earlier versions with
the bare ``Appointment`` are still adopted, and rewritten to the ``Type?`` form.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from fhir_bridge.fhir.client import EhrClient
from fhir_bridge.fhir.errors import EhrNotFound, EhrNotSupported
from fhir_bridge.ingest.auth import subscription_token
from fhir_bridge.ingest.parsing import parse_topic_bundle
from fhir_bridge.store.models import Subscription
from fhir_bridge.sync import repository
from fhir_bridge.sync.service import SyncDeps, catch_up_by_search, recover_events

log = logging.getLogger(__name__)

BACKPORT = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition"
BACKPORT_PROFILE = f"{BACKPORT}/backport-subscription"
TOPIC_NAMES = {
    "Appointment": "appointment-change",
    "MedicationRequest": "medicationrequest-change",
    "Encounter": "encounter-change",
}


@dataclass(frozen=True)
class SubscriptionPlan:
    """How we want the EHR to notify us (from settings)."""

    kind: str
    payload: str
    public_base_url: str
    topic_base: str
    heartbeat_period: int
    master_secret: str


def endpoint_for(plan: SubscriptionPlan, subscription_id: str) -> str:
    return f"{plan.public_base_url}/notifications/{subscription_id}"


def classic_criteria(resource_type: str) -> str:
    """R4 ``Subscription.criteria`` is a search URL: every change of the type is ``Type?``.

    Unnarrowed on purpose: a status or date filter would hide the very change (a
    cancellation, a reschedule) that must stop or move a reminder.
    """
    return f"{resource_type}?"


def criteria_for(plan: SubscriptionPlan, resource_type: str) -> str:
    """The ``Subscription.criteria`` we ask for: a topic canonical URL, or a search URL."""
    if plan.kind == "topic":
        return f"{plan.topic_base}/{TOPIC_NAMES[resource_type]}"
    return classic_criteria(resource_type)


def _is_ours(plan: SubscriptionPlan, resource_type: str, criteria: str | None) -> bool:
    """The criteria we ask for now, or what an earlier version asked for (bare ``Type``)."""
    wanted = criteria_for(plan, resource_type)
    return criteria == wanted or (plan.kind == "classic" and criteria == resource_type)


def build_subscription_resource(
    plan: SubscriptionPlan, subscription_id: str, resource_type: str
) -> dict[str, Any]:
    """The R4 Subscription we ask the EHR to create (Backport IG profile for topics)."""
    token = subscription_token(plan.master_secret, subscription_id)
    channel: dict[str, Any] = {
        "type": "rest-hook",
        "endpoint": endpoint_for(plan, subscription_id),
        "header": [f"Authorization: Bearer {token}"],
    }
    resource: dict[str, Any] = {
        "resourceType": "Subscription",
        "status": "requested",
        "reason": f"fhir-bridge patient outreach: {resource_type} changes",
        "channel": channel,
    }
    if plan.kind == "topic":
        resource["meta"] = {"profile": [BACKPORT_PROFILE]}
        resource["criteria"] = criteria_for(plan, resource_type)
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
        resource["criteria"] = criteria_for(plan, resource_type)
        if plan.payload != "empty":
            channel["payload"] = "application/fhir+json"
    return resource


def ensure_subscriptions(
    session: Session,
    ehr: EhrClient,
    plan: SubscriptionPlan,
    resource_types: tuple[str, ...],
    now: datetime,
) -> list[Subscription]:
    """Create (or adopt, or reactivate) one Subscription per resource type."""
    return [_ensure_one(session, ehr, plan, rt, now) for rt in resource_types]


def _ensure_one(
    session: Session, ehr: EhrClient, plan: SubscriptionPlan, resource_type: str, now: datetime
) -> Subscription:
    local = repository.find_subscription(session, resource_type, plan.kind)
    if local is None:
        local = _adopt_remote(session, ehr, plan, resource_type, now)
    if local is not None and local.remote_id:
        try:
            remote = ehr.read("Subscription", local.remote_id)
        except EhrNotFound:
            remote = None
        if remote is not None and remote.get("channel", {}).get("endpoint") == local.endpoint:
            if remote.get("status") in ("error", "off"):
                _reactivate(ehr, plan, local, remote)
            elif remote.get("criteria") != criteria_for(plan, resource_type):
                remote = _rewrite_criteria(ehr, plan, local, remote)
            local.criteria = criteria_for(plan, resource_type)
            local.status = _local_status(remote.get("status"))
            return local
    if local is None:
        local = Subscription(
            id=str(uuid.uuid4()),
            resource_type=resource_type,
            kind=plan.kind,
            payload=plan.payload,
            criteria="",
            endpoint="",
            heartbeat_period=plan.heartbeat_period,
            events_through=0,
            good_through=now,
            created_at=now,
        )
        session.add(local)
    resource = build_subscription_resource(plan, local.id, resource_type)
    created = ehr.create(resource)
    # A new Subscription on the EHR numbers its events from 1 again (e.g. the old one was
    # deleted, or a sandbox EHR restarted); what the old one delivered says nothing of it.
    local.events_through = 0
    local.remote_id = created.get("id")
    local.criteria = resource["criteria"]
    local.endpoint = resource["channel"]["endpoint"]
    local.payload = plan.payload
    local.status = _local_status(created.get("status"))
    log.info("subscription created", extra={"type": resource_type, "remote_id": local.remote_id})
    return local


def _adopt_remote(
    session: Session, ehr: EhrClient, plan: SubscriptionPlan, resource_type: str, now: datetime
) -> Subscription | None:
    """Find a Subscription of ours on the EHR (by endpoint prefix) and record it locally."""
    prefix = f"{plan.public_base_url}/notifications/"
    wanted = criteria_for(plan, resource_type)
    for remote in ehr.search_all("Subscription", {"_count": "100"}):
        endpoint = (remote.get("channel") or {}).get("endpoint") or ""
        if not endpoint.startswith(prefix) or not _is_ours(
            plan, resource_type, remote.get("criteria")
        ):
            continue
        local = Subscription(
            id=endpoint[len(prefix) :],
            resource_type=resource_type,
            kind=plan.kind,
            payload=plan.payload,
            criteria=wanted,
            endpoint=endpoint,
            remote_id=remote.get("id"),
            heartbeat_period=plan.heartbeat_period,
            events_through=0,
            good_through=now,
            created_at=now,
        )
        session.add(local)
        return local
    return None


def _local_status(remote_status: str | None) -> str:
    return remote_status or "requested"


def _rewrite_criteria(
    ehr: EhrClient, plan: SubscriptionPlan, local: Subscription, remote: dict[str, Any]
) -> dict[str, Any]:
    """Bring a Subscription of ours up to today's criteria form (e.g. ``Appointment?``)."""
    log.info(
        "subscription criteria updated",
        extra={"subscription": local.id, "remote_id": remote.get("id")},
    )
    updated = build_subscription_resource(plan, local.id, local.resource_type)
    updated["id"] = remote["id"]
    if plan.kind == "classic" and remote.get("status") == "active":
        updated["status"] = "active"
    return ehr.update(updated) or updated


def _reactivate(
    ehr: EhrClient, plan: SubscriptionPlan, local: Subscription, remote: dict[str, Any]
) -> None:
    log.warning(
        "subscription was in error; reactivating",
        extra={"subscription": local.id, "remote_status": remote.get("status")},
    )
    local.last_error = str(remote.get("error") or remote.get("status"))[:200]
    repaired = build_subscription_resource(plan, local.id, local.resource_type)
    repaired["id"] = remote["id"]
    if plan.kind == "classic":
        repaired["status"] = "active"
    ehr.update(repaired)


def check_subscription(
    session: Session,
    deps: SyncDeps,
    ehr: EhrClient,
    plan: SubscriptionPlan,
    subscription: Subscription,
    page_size: int,
) -> str:
    """Periodic health check: ok, reactivated, gap, heartbeat-late or missing.

    ``$status`` is asked on every check, so a missed heartbeat or a dropped
    notification is noticed within one check interval and recovered at once.
    """
    subscription.last_checked_at = deps.now
    if not subscription.remote_id:
        return "missing"
    try:
        remote = ehr.read("Subscription", subscription.remote_id)
    except EhrNotFound:
        subscription.status = "off"
        return "missing"
    if remote.get("status") in ("error", "off"):
        # Counted before the search, so every event it names is covered by the search.
        counted = _remote_event_count(deps, subscription)
        _reactivate(ehr, plan, subscription, remote)
        catch_up_by_search(
            session, deps, subscription.resource_type, subscription.good_through, page_size
        )
        subscription.good_through = deps.now - deps.skew
        subscription.events_through = max(subscription.events_through, counted or 0)
        subscription.status = "active"
        return "reactivated"
    subscription.status = _local_status(remote.get("status"))
    events_since = _remote_event_count(deps, subscription)
    if events_since is not None and events_since > subscription.events_through:
        recover_events(
            session, deps, subscription, subscription.events_through + 1, events_since, page_size
        )
        subscription.events_through = events_since
        return "gap"
    if _heartbeat_overdue(subscription, deps.now):
        log.warning(
            "heartbeat overdue; $status shows nothing missed",
            extra={"subscription": subscription.id},
        )
        return "heartbeat-late"
    return "ok"


def _heartbeat_overdue(subscription: Subscription, now: datetime) -> bool:
    """No notification for two heartbeat periods (plus a little grace)."""
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
