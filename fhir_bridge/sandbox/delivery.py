"""Background notification delivery: one ordered worker thread per subscription, plus chaos.

Like real EHRs, a notification answered 5xx (or not answered: a connection error, a
timeout) is retried with exponential backoff a bounded number of times
(:class:`RetryPolicy`); only when every try failed does it count as one delivery failure
(``max_delivery_failures`` of those in a row put the Subscription in ``error``). A 4xx is
the receiver's refusal and is not retried.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import httpx

from fhir_bridge.sandbox.chaos import Chaos
from fhir_bridge.sandbox.store import MonotonicClock, format_instant

DELIVERY_TIMEOUT_SECONDS = 2.0
EVENT_NOTIFICATION = "event-notification"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Delivery:
    """One outgoing notification request."""

    subscription_id: str
    kind: str  # "handshake" | "heartbeat" | "event-notification"
    event_number: int | None
    style: str
    method: str
    url: str
    headers: dict[str, str]
    body: bytes
    duplicated: bool = False
    reordered: bool = False


@dataclass
class RetryPolicy:
    """Retries of one notification after a 5xx or no answer: ``retries`` more tries, waiting
    ``backoff_seconds``, then twice as long each time. Settable at runtime
    (``/_admin/settings``: ``delivery_retries``, ``retry_backoff_seconds``)."""

    retries: int = 2
    backoff_seconds: float = 0.2

    def delay(self, retry: int) -> float:
        """Seconds to wait before retry number ``retry`` (1-based)."""
        return float(self.backoff_seconds * 2 ** (retry - 1))


ResultCallback = Callable[[Delivery, bool, str | None], None]
DeliverableCheck = Callable[[Delivery], bool]


class DeliveryLog:
    """Every delivery attempt (and every chaos drop), visible at `/_admin/deliveries`."""

    def __init__(self, clock: MonotonicClock) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._records: list[dict[str, Any]] = []

    def record(
        self,
        delivery: Delivery,
        *,
        status_code: int | None = None,
        error: str | None = None,
        dropped: bool = False,
    ) -> None:
        """Append one attempt; only ids, codes and status numbers are kept."""
        entry = {
            "subscription_id": delivery.subscription_id,
            "type": delivery.kind,
            "event_number": delivery.event_number,
            "style": delivery.style,
            "method": delivery.method,
            "url": delivery.url,
            "status_code": status_code,
            "error": error,
            "ok": status_code is not None and 200 <= status_code < 300,
            "dropped": dropped,
            "duplicated": delivery.duplicated,
            "reordered": delivery.reordered,
            "at": format_instant(self._clock.next_ms()),
        }
        with self._lock:
            self._records.append(entry)

    def entries(self) -> list[dict[str, Any]]:
        """A copy of all records, oldest first."""
        with self._lock:
            return [dict(entry) for entry in self._records]

    def clear(self) -> None:
        """Forget all records."""
        with self._lock:
            self._records.clear()


class _Worker:
    """Delivers one subscription's notifications strictly in queue order."""

    def __init__(self, dispatcher: Dispatcher, subscription_id: str, generation: int) -> None:
        self._dispatcher = dispatcher
        self._generation = generation
        self.queue: queue.Queue[Delivery | None] = queue.Queue()
        self.thread = threading.Thread(
            target=self._run, name=f"ehr-delivery-{subscription_id}", daemon=True
        )
        self.thread.start()

    def _run(self) -> None:
        with httpx.Client(timeout=DELIVERY_TIMEOUT_SECONDS) as client:
            while True:
                delivery = self.queue.get()
                if delivery is None:
                    return
                self._dispatcher.send(client, delivery, self._generation)


class Dispatcher:
    """Applies chaos to event notifications and hands them to per-subscription workers."""

    def __init__(
        self,
        chaos: Chaos,
        delivery_log: DeliveryLog,
        on_result: ResultCallback,
        is_deliverable: DeliverableCheck,
        retry: RetryPolicy,
    ) -> None:
        self._chaos = chaos
        self._retry = retry
        self._log = delivery_log
        self._on_result = on_result
        self._is_deliverable = is_deliverable
        self._lock = threading.Lock()
        self._workers: dict[str, _Worker] = {}
        self._reorder_buffers: dict[str, list[Delivery]] = {}
        self._generation = 0

    def submit(self, delivery: Delivery) -> None:
        """Queue a notification; event notifications pass through the chaos options."""
        if delivery.kind != EVENT_NOTIFICATION:
            self._enqueue(delivery)
            return
        decision = self._chaos.decide()
        if decision.drop:
            self._log.record(delivery, dropped=True)
            return
        copies = [delivery]
        if decision.duplicate:
            copies.append(replace(delivery, duplicated=True))
        window = self._chaos.reorder_window
        if window <= 1:
            for copy_ in copies:
                self._enqueue(copy_)
            return
        with self._lock:
            buffer = self._reorder_buffers.setdefault(delivery.subscription_id, [])
            buffer.extend(copies)
            ready = list(buffer) if len(buffer) >= window else []
            if ready:
                buffer.clear()
        self._release_shuffled(ready)

    def flush(self) -> None:
        """Release every reorder buffer now, shuffled."""
        with self._lock:
            buffers = list(self._reorder_buffers.values())
            self._reorder_buffers.clear()
        for buffer in buffers:
            self._release_shuffled(buffer)

    def stop(self, subscription_id: str) -> None:
        """Stop the worker of a deleted subscription."""
        with self._lock:
            worker = self._workers.pop(subscription_id, None)
            self._reorder_buffers.pop(subscription_id, None)
        if worker is not None:
            worker.queue.put(None)

    def stop_all(self) -> None:
        """Stop every worker (used by `/_admin/reset`)."""
        with self._lock:
            workers = list(self._workers.values())
            self._workers.clear()
            self._reorder_buffers.clear()
            self._generation += 1
        for worker in workers:
            worker.queue.put(None)

    def send(self, client: httpx.Client, delivery: Delivery, generation: int) -> None:
        """Deliver one notification (worker thread), retrying a 5xx or no answer with
        backoff, and report the outcome of the last try.

        Results of requests still in flight during `/_admin/reset` are discarded, so one
        test's slow endpoint cannot leak records or status changes into the next test.
        """
        retries = max(self._retry.retries, 0)
        for retry in range(retries + 1):
            if retry:
                time.sleep(self._retry.delay(retry))
            if self._stale(generation) or not self._is_deliverable(delivery):
                return
            outcome = self._attempt(client, delivery, generation)
            if outcome is None:
                return
            ok, detail, retryable = outcome
            if ok or not retryable or retry == retries:
                self._on_result(delivery, ok, detail)
                return

    def _attempt(
        self, client: httpx.Client, delivery: Delivery, generation: int
    ) -> tuple[bool, str | None, bool] | None:
        """One HTTP request: (ok, failure detail, worth retrying); None once reset."""
        try:
            response = client.request(
                delivery.method, delivery.url, content=delivery.body, headers=delivery.headers
            )
        except httpx.HTTPError as error:
            if self._stale(generation):
                return None
            detail = type(error).__name__
            self._log.record(delivery, error=detail)
            log.info("delivery to subscription %s failed: %s", delivery.subscription_id, detail)
            return False, detail, True
        if self._stale(generation):
            return None
        self._log.record(delivery, status_code=response.status_code)
        ok = 200 <= response.status_code < 300
        return ok, None if ok else f"HTTP {response.status_code}", response.status_code >= 500

    def _stale(self, generation: int) -> bool:
        with self._lock:
            return generation != self._generation

    def _release_shuffled(self, deliveries: list[Delivery]) -> None:
        if not deliveries:
            return
        self._chaos.shuffle(deliveries)
        for delivery in deliveries:
            self._enqueue(replace(delivery, reordered=True))

    def _enqueue(self, delivery: Delivery) -> None:
        with self._lock:
            worker = self._workers.get(delivery.subscription_id)
            if worker is None:
                worker = _Worker(self, delivery.subscription_id, self._generation)
                self._workers[delivery.subscription_id] = worker
        worker.queue.put(delivery)
