"""Subscription lifecycle: matching events, handshakes, heartbeats, failures and `$status`."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Any

from fhir_bridge.sandbox.chaos import Chaos
from fhir_bridge.sandbox.delivery import (
    EVENT_NOTIFICATION,
    Delivery,
    DeliveryLog,
    Dispatcher,
    RetryPolicy,
)
from fhir_bridge.sandbox.notifications import (
    EventRecord,
    StatusSnapshot,
    notification_bundle,
    status_searchset,
)
from fhir_bridge.sandbox.outcomes import NotFoundError, NotSupportedError
from fhir_bridge.sandbox.search import matches
from fhir_bridge.sandbox.store import MonotonicClock, ResourceStore, format_instant
from fhir_bridge.sandbox.subscription_model import (
    FHIR_JSON,
    TOPIC_RESOURCE_TYPES,
    SubscriptionSpec,
    TopicRule,
    parse_subscription,
    topic_rules,
)

HEARTBEAT_TICK_SECONDS = 0.1
log = logging.getLogger(__name__)


@dataclass
class ServerSettings:
    """Behaviour switches tests may flip at runtime through `/_admin/settings`."""

    supports_events: bool = True
    max_delivery_failures: int = 3
    retry: RetryPolicy = field(default_factory=RetryPolicy)


@dataclass
class _LiveSubscription:
    spec: SubscriptionSpec
    status: str
    events: list[EventRecord] = field(default_factory=list)
    consecutive_failures: int = 0
    last_sent: float = field(default_factory=time.monotonic)
    # After a (simulated) server restart: nothing is sent or counted until re-requested.
    dormant: bool = False


class SubscriptionManager:
    """Owns every Subscription's runtime state; all mutations happen under the server lock."""

    def __init__(
        self,
        *,
        store: ResourceStore,
        clock: MonotonicClock,
        lock: threading.RLock,
        chaos: Chaos,
        delivery_log: DeliveryLog,
        settings: ServerSettings,
        base_url: str,
        fhir_version: str,
    ) -> None:
        self._store = store
        self._clock = clock
        self._lock = lock
        self._chaos = chaos
        self._settings = settings
        self._base_url = base_url
        self._fhir_version = fhir_version
        self._live: dict[str, _LiveSubscription] = {}
        self.dispatcher = Dispatcher(
            chaos, delivery_log, self._on_result, self._is_deliverable, settings.retry
        )
        self._stopping = threading.Event()
        self._heartbeats = threading.Thread(
            target=self._heartbeat_loop, name="ehr-heartbeats", daemon=True
        )
        self._heartbeats.start()

    def shutdown(self) -> None:
        """Stop heartbeat scheduling and all delivery workers."""
        self._stopping.set()
        self.dispatcher.stop_all()

    def reset(self) -> None:
        """Forget every subscription and stop their workers."""
        with self._lock:
            self._live.clear()
        self.dispatcher.stop_all()

    def topics(self) -> dict[str, TopicRule]:
        """The topics stored on this server (its own and any a client installed)."""
        stored = [
            resource
            for type_ in TOPIC_RESOURCE_TYPES
            for resource in self._store.current_of_type(type_)
        ]
        return topic_rules(stored)

    def prepare(self, resource: dict[str, Any]) -> dict[str, Any]:
        """Validate a client-written Subscription and set the status the server assigns."""
        spec = parse_subscription(resource, self.topics())
        prepared = {key: value for key, value in resource.items() if key != "error"}
        requested_status = resource.get("status")
        if requested_status in ("off", "error"):
            return prepared
        prepared["status"] = "requested" if spec.topic_based else "active"
        return prepared

    def register(self, stored: dict[str, Any]) -> None:
        """(Re)start a stored Subscription: new handshake for topic-based, failures reset."""
        spec = parse_subscription(stored, self.topics())
        with self._lock:
            previous = self._live.get(spec.id)
            live = _LiveSubscription(spec, str(stored.get("status")))
            if previous is not None:
                live.events = previous.events
            self._live[spec.id] = live
            if live.status == "requested":
                self.dispatcher.submit(self._backport_delivery(live, "handshake", []))

    def forget(self, subscription_id: str) -> None:
        """A deleted Subscription stops receiving anything."""
        with self._lock:
            self._live.pop(subscription_id, None)
        self.dispatcher.stop(subscription_id)

    def simulate_restart(self) -> None:
        """As after a server restart that lost its delivery state: every Subscription keeps
        its stored status but gets no heartbeats and no notifications (its events are not
        counted either) until a client re-requests it (PUT), which starts a new handshake."""
        with self._lock:
            for live in self._live.values():
                live.dormant = True
        log.info("subscriptions dormant until re-requested (simulated restart)")

    def on_resource_written(self, resource: dict[str, Any], method: str) -> None:
        """Count and notify an event for every subscription whose criteria match."""
        timestamp = (resource.get("meta") or {}).get("lastUpdated") or format_instant(
            self._clock.next_ms()
        )
        first_version = str((resource.get("meta") or {}).get("versionId")) == "1"
        interaction = "create" if method == "POST" or first_version else "update"
        with self._lock:
            for live in self._live.values():
                spec = live.spec
                if spec.focus_type != resource["resourceType"] or live.dormant:
                    continue
                if interaction not in spec.interactions:
                    continue
                if not matches(resource, spec.filters):
                    continue
                event = EventRecord(len(live.events) + 1, timestamp, method, resource)
                live.events.append(event)
                if live.status in ("requested", "active"):
                    live.last_sent = time.monotonic()
                    self.dispatcher.submit(self._event_delivery(live, event))

    def force_error(self, subscription_id: str) -> None:
        """Admin hook: put a subscription in `error` as if deliveries kept failing."""
        with self._lock:
            live = self._require(subscription_id)
            self._set_status(live, "error", "Forced into error by the test harness")

    def status_bundle(self, subscription_id: str) -> dict[str, Any]:
        """The `$status` operation result."""
        with self._lock:
            return status_searchset(self._snapshot(self._require(subscription_id)))

    def events_bundle(
        self, subscription_id: str, since: int | None, until: int | None, content: str | None
    ) -> dict[str, Any]:
        """The `$events` operation result, or 501 when switched off."""
        if not self._settings.supports_events:
            raise NotSupportedError("$events is not supported by this server")
        with self._lock:
            live = self._require(subscription_id)
            selected = [
                event
                for event in live.events
                if (since is None or event.number >= since)
                and (until is None or event.number <= until)
            ]
            return notification_bundle(
                self._snapshot(live), "query-event", selected, content or live.spec.content
            )

    def _require(self, subscription_id: str) -> _LiveSubscription:
        live = self._live.get(subscription_id)
        if live is None:
            raise NotFoundError(f"Subscription/{subscription_id} is not known")
        return live

    def _snapshot(self, live: _LiveSubscription) -> StatusSnapshot:
        return StatusSnapshot(
            live.spec, live.status, len(live.events), self._base_url, self._fhir_version
        )

    def _backport_delivery(
        self, live: _LiveSubscription, kind: str, events: list[EventRecord]
    ) -> Delivery:
        snapshot = self._snapshot(live)
        if kind != "handshake" and live.status == "requested":
            # Queued behind the handshake: it is only sent once the handshake made it active.
            snapshot = replace(snapshot, status="active")
        bundle = notification_bundle(snapshot, kind, events, live.spec.content)
        return Delivery(
            subscription_id=live.spec.id,
            kind=kind,
            event_number=events[-1].number if events else None,
            style=live.spec.style,
            method="POST",
            url=live.spec.endpoint,
            headers={**live.spec.headers, "Content-Type": FHIR_JSON},
            body=json.dumps(bundle).encode(),
        )

    def _event_delivery(self, live: _LiveSubscription, event: EventRecord) -> Delivery:
        spec = live.spec
        if spec.topic_based:
            return self._backport_delivery(live, EVENT_NOTIFICATION, [event])
        method, url, body = "POST", spec.endpoint, b""
        headers = dict(spec.headers)
        if spec.style == "hapi":
            method, url = "PUT", f"{spec.endpoint.rstrip('/')}/{event.focus}"
            body = json.dumps(event.resource).encode()
            headers["Content-Type"] = FHIR_JSON
        elif spec.style == "medplum" and spec.secret:
            body = json.dumps(event.resource).encode()
            headers["Content-Type"] = FHIR_JSON
            headers["X-Signature"] = hmac.new(
                spec.secret.encode(), body, hashlib.sha256
            ).hexdigest()
        return Delivery(
            spec.id, EVENT_NOTIFICATION, event.number, spec.style, method, url, headers, body
        )

    def _is_deliverable(self, delivery: Delivery) -> bool:
        with self._lock:
            live = self._live.get(delivery.subscription_id)
            if live is None or live.dormant:
                return False
            if delivery.kind == "handshake":
                return live.status == "requested"
            return live.status == "active"

    def _on_result(self, delivery: Delivery, ok: bool, detail: str | None) -> None:
        with self._lock:
            live = self._live.get(delivery.subscription_id)
            if live is None:
                return
            if delivery.kind == "handshake":
                if ok:
                    self._set_status(live, "active", None)
                else:
                    self._set_status(live, "error", f"Handshake failed: {detail}")
                return
            if ok:
                live.consecutive_failures = 0
                return
            live.consecutive_failures += 1
            if live.status == "active" and (
                live.consecutive_failures >= self._settings.max_delivery_failures
            ):
                self._set_status(
                    live,
                    "error",
                    f"{live.consecutive_failures} consecutive delivery failures (last: {detail})",
                )

    def _set_status(self, live: _LiveSubscription, status: str, error: str | None) -> None:
        live.status = status
        log.info("Subscription/%s is now %s", live.spec.id, status)

        def apply(resource: dict[str, Any]) -> None:
            resource["status"] = status
            if error:
                resource["error"] = error
            else:
                resource.pop("error", None)

        self._store.system_update("Subscription", live.spec.id, apply)

    def _heartbeat_loop(self) -> None:
        while not self._stopping.wait(HEARTBEAT_TICK_SECONDS):
            delay = self._chaos.heartbeat_delay
            now = time.monotonic()
            with self._lock:
                for live in self._live.values():
                    period = live.spec.heartbeat_seconds
                    if not period or live.status != "active" or live.dormant:
                        continue
                    if now >= live.last_sent + period + delay:
                        live.last_sent = now
                        self.dispatcher.submit(self._backport_delivery(live, "heartbeat", []))
