"""Prometheus ``/metrics``: counters, latency histograms and queue gauges, read from the
database when Prometheus scrapes.

Why from the database and not from counters in each process: the work is done by separate
processes (the API, Celery workers whose prefork children come and go, the scheduler,
one-off ``fhir-bridge dispatch`` runs), and the database is already the record of every
notification, message and write-back with its times. Counting rows at scrape time is
therefore exact across processes and restarts, needs no shared metrics folder nor per-PID
files to clean up, and adds no line to the hot paths. The latencies measured are the ones
a clinic's service level is about: notification received → processed (ingest and
planning), message due → handed to the provider (delivery), message settled → its
Communication in the EHR (write-back). What this cannot see is the duration of one call
inside a process (an SMTP or Twilio round trip); the logs carry those.

Labels come from fixed sets only (notification kind, channel, outcome, rule id, queue
name); anything else is counted under ``other``. No label, value or name carries PHI.
A scrape runs a handful of aggregate queries; results are reused for
``CACHE_SECONDS`` so several scrapers do not multiply the load.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Final

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from fhir_bridge.outcomes import repository
from fhir_bridge.outcomes.repository import Histogram
from fhir_bridge.runtime import Runtime
from fhir_bridge.store.db import transaction
from fhir_bridge.store.worklist import WORK_QUEUES, queue_ages
from rules import appointments, discharge, refills

PREFIX: Final = "fhir_bridge"
CACHE_SECONDS: Final = 5.0
RULE_IDS: Final = frozenset({appointments.RULE, refills.RULE, discharge.RULE})
CHANNELS: Final = frozenset({"sms", "email"})
NOTIFICATION_KINDS: Final = frozenset(
    {
        "handshake",
        "heartbeat",
        "event-notification",
        "query-status",
        "query-event",
        "classic-empty",
        "classic-resource",
    }
)
NOTIFICATION_OUTCOMES: Final = frozenset({"done", "rejected", "failed"})
MESSAGE_OUTCOMES: Final = frozenset({"sent", "failed", "withheld", "cancelled", "unknown"})
# Seconds: from "within a second" to "a day late".
INGEST_BUCKETS: Final = (0.5, 1, 2, 5, 10, 30, 60, 300, 900, 3600)
DELIVERY_BUCKETS: Final = (1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 86400)
WRITEBACK_BUCKETS: Final = (1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 86400)

router = APIRouter(include_in_schema=False)


def _one_of(value: str | None, allowed: frozenset[str], none: str = "none") -> str:
    if value is None:
        return none
    return value if value in allowed else "other"


@dataclass(frozen=True)
class _Snapshot:
    notifications: list[tuple[str, str, int]]
    messages: list[tuple[str, str | None, str, int]]
    writebacks: list[tuple[str, int]]
    ingest: list[Histogram]
    delivery: list[Histogram]
    writeback: list[Histogram]
    depths: dict[str, int]
    ages: dict[str, int | None]
    seconds: float


def _read(rt: Runtime) -> _Snapshot:
    started = time.perf_counter()
    now = rt.clock()
    with transaction(rt.sessions) as session:
        snapshot = _Snapshot(
            notifications=repository.notification_totals(session),
            messages=repository.message_totals(session),
            writebacks=repository.writeback_totals(session),
            ingest=repository.ingest_latency(session, INGEST_BUCKETS),
            delivery=repository.delivery_latency(session, DELIVERY_BUCKETS),
            writeback=repository.writeback_latency(session, WRITEBACK_BUCKETS),
            depths=repository.queue_depths(session, now),
            ages=queue_ages(session, now),
            seconds=0.0,
        )
    return _Snapshot(**{**snapshot.__dict__, "seconds": time.perf_counter() - started})


def _histogram(
    name: str,
    documentation: str,
    label_names: Sequence[str],
    found: Iterable[Histogram],
    bounds: Sequence[float],
    relabel: Sequence[frozenset[str]],
) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, documentation, labels=list(label_names))
    merged: dict[tuple[str, ...], list[float]] = {}
    for row in found:
        labels = tuple(
            _one_of(value, allowed) for value, allowed in zip(row.labels, relabel, strict=True)
        )
        into = merged.setdefault(labels, [0.0] * (len(bounds) + 2))
        for i, count in enumerate(row.buckets):
            into[i] += count
        into[-2] += row.count
        into[-1] += row.total
    for labels, values in sorted(merged.items()):
        buckets = [(_bound(b), values[i]) for i, b in enumerate(bounds)]
        buckets.append(("+Inf", values[-2]))
        family.add_metric(list(labels), buckets, values[-1])
    return family


def _bound(value: float) -> str:
    return str(float(value))


class DatabaseCollector(Collector):
    """Every fhir-bridge metric, from one read of the database."""

    def __init__(self, snapshot: _Snapshot) -> None:
        self.snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        s = self.snapshot
        accepted = CounterMetricFamily(
            f"{PREFIX}_notifications",
            "EHR notifications accepted (stored before we answered 2xx).",
            labels=["kind"],
        )
        processed = CounterMetricFamily(
            f"{PREFIX}_notifications_processed",
            "EHR notifications the worker finished, by outcome (done, rejected, failed).",
            labels=["kind", "outcome"],
        )
        kinds: dict[str, int] = {}
        outcomes: dict[tuple[str, str], int] = {}
        for kind, status, n in s.notifications:
            label = _one_of(kind, NOTIFICATION_KINDS)
            kinds[label] = kinds.get(label, 0) + n
            if status in NOTIFICATION_OUTCOMES:
                outcomes[(label, status)] = outcomes.get((label, status), 0) + n
        for kind, n in sorted(kinds.items()):
            accepted.add_metric([kind], n)
        for (kind, outcome), n in sorted(outcomes.items()):
            processed.add_metric([kind, outcome], n)
        yield accepted
        yield processed
        yield _histogram(
            f"{PREFIX}_ingest_seconds",
            "Notification received to processed (resources stored, messages planned).",
            ["kind"],
            s.ingest,
            INGEST_BUCKETS,
            [NOTIFICATION_KINDS],
        )
        yield from self._messages()
        yield _histogram(
            f"{PREFIX}_delivery_seconds",
            "Message due to handed to the provider (how late delivery ran), by channel.",
            ["channel"],
            s.delivery,
            DELIVERY_BUCKETS,
            [CHANNELS],
        )
        written = CounterMetricFamily(
            f"{PREFIX}_writebacks",
            "Communications written to the EHR for our messages.",
            labels=["outcome"],
        )
        written.add_metric(["written"], sum(n for status, n in s.writebacks if status == "written"))
        yield written
        yield _histogram(
            f"{PREFIX}_writeback_seconds",
            "Message settled (sent, or decided when never sent) to its Communication in the EHR.",
            [],
            s.writeback,
            WRITEBACK_BUCKETS,
            [],
        )
        yield from self._queues()
        took = GaugeMetricFamily(
            f"{PREFIX}_metrics_query_seconds", "Time the database queries of this scrape took."
        )
        took.add_metric([], round(s.seconds, 6))
        yield took

    def _messages(self) -> Iterator[Metric]:
        planned = CounterMetricFamily(
            f"{PREFIX}_messages_planned",
            "Outreach messages planned (every row the rules created), by rule.",
            labels=["rule"],
        )
        settled = CounterMetricFamily(
            f"{PREFIX}_messages_settled",
            "Outreach messages that reached a final status, by rule, channel and outcome.",
            labels=["rule", "channel", "outcome"],
        )
        open_now = GaugeMetricFamily(
            f"{PREFIX}_messages_open",
            "Outreach messages not final yet (planned, queued, sending), by rule.",
            labels=["rule"],
        )
        by_rule: dict[str, int] = {}
        finals: dict[tuple[str, str, str], int] = {}
        opened: dict[str, int] = {}
        for rule, channel, status, n in self.snapshot.messages:
            rule_label = _one_of(rule, RULE_IDS)
            by_rule[rule_label] = by_rule.get(rule_label, 0) + n
            if status in MESSAGE_OUTCOMES:
                key = (rule_label, _one_of(channel, CHANNELS), status)
                finals[key] = finals.get(key, 0) + n
            else:
                opened[rule_label] = opened.get(rule_label, 0) + n
        for rule_label in sorted(RULE_IDS | by_rule.keys()):
            planned.add_metric([rule_label], by_rule.get(rule_label, 0))
            open_now.add_metric([rule_label], opened.get(rule_label, 0))
        for labels, n in sorted(finals.items()):
            settled.add_metric(list(labels), n)
        yield planned
        yield settled
        yield open_now

    def _queues(self) -> Iterator[Metric]:
        depth = GaugeMetricFamily(
            f"{PREFIX}_queue_depth", "Items waiting in each kind of work.", labels=["queue"]
        )
        age = GaugeMetricFamily(
            f"{PREFIX}_queue_oldest_age_seconds",
            "Seconds the oldest waiting item of each kind of work has waited (0: empty).",
            labels=["queue"],
        )
        for queue in WORK_QUEUES:
            depth.add_metric([queue], self.snapshot.depths.get(queue, 0))
            age.add_metric([queue], self.snapshot.ages.get(queue) or 0)
        yield depth
        yield age


_LOCK = threading.Lock()


def exposition(rt: Runtime, cache: dict[str, tuple[float, bytes]]) -> bytes:
    """The Prometheus text exposition of every metric (reused for ``CACHE_SECONDS``)."""
    with _LOCK:
        cached = cache.get("body")
        if cached is not None and time.monotonic() - cached[0] < CACHE_SECONDS:
            return cached[1]
        registry = CollectorRegistry(auto_describe=False)
        registry.register(DatabaseCollector(_read(rt)))
        body = generate_latest(registry)
        cache["body"] = (time.monotonic(), body)
        return body


def authorized(rt: Runtime, header: str | None) -> bool:
    """True when no token is configured, or the request's bearer token equals it."""
    token = rt.settings.metrics_token
    if token is None:
        return True
    scheme, _, given = (header or "").partition(" ")
    expected = token.get_secret_value().encode()
    return scheme.lower() == "bearer" and secrets.compare_digest(given.strip().encode(), expected)


@router.get("/metrics")
def metrics(request: Request) -> Response:
    """Prometheus scrape endpoint."""
    rt: Runtime = request.app.state.runtime
    if not authorized(rt, request.headers.get("authorization")):
        return Response(
            "bearer token required\n",
            status_code=401,
            media_type="text/plain",
            headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
        )
    state = request.app.state
    if not hasattr(state, "metrics_cache"):
        state.metrics_cache = {}
    return Response(exposition(rt, state.metrics_cache), media_type=CONTENT_TYPE_LATEST)
