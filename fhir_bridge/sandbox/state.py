"""The whole in-memory EHR: store, auth, subscriptions, chaos and counters behind one lock."""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass
from typing import Any

from fhir_bridge.sandbox.auth import AuthServer
from fhir_bridge.sandbox.chaos import Chaos
from fhir_bridge.sandbox.delivery import DeliveryLog, RetryPolicy
from fhir_bridge.sandbox.outcomes import InvalidRequestError
from fhir_bridge.sandbox.paging import SearchPager
from fhir_bridge.sandbox.resource_types import R4_RESOURCE_TYPES, R4B_EXTRA_RESOURCE_TYPES
from fhir_bridge.sandbox.store import MonotonicClock, ResourceStore
from fhir_bridge.sandbox.subscription_model import TOPICS, builtin_topic_resource
from fhir_bridge.sandbox.subscriptions import ServerSettings, SubscriptionManager


@dataclass(frozen=True)
class ServerConfig:
    """Start-up options of the fake EHR process."""

    host: str
    port: int
    fhir_version: str = "R4"
    static_token: str = "dev-token"  # noqa: S105
    supports_events: bool = True
    max_delivery_failures: int = 3
    supports_subscriptions: bool = True  # False: an EHR without Subscriptions
    # False: an EHR without topics until a client installs some (Basic / SubscriptionTopic).
    builtin_topics: bool = True

    @property
    def origin(self) -> str:
        """Scheme, host and port as clients reach the server."""
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """The FHIR base URL."""
        return f"{self.origin}/fhir"

    @property
    def token_url(self) -> str:
        """The SMART token endpoint."""
        return f"{self.origin}/auth/token"


class EhrState:
    """Everything the server remembers; `/_admin/reset` returns it to a fresh start."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.lock = threading.RLock()
        self.clock = MonotonicClock()
        self.store = ResourceStore(self.clock, self.lock)
        self.pager = SearchPager()
        self.auth = AuthServer(config.static_token, config.token_url)
        self.chaos = Chaos()
        self.delivery_log = DeliveryLog(self.clock)
        self.settings = ServerSettings(config.supports_events, config.max_delivery_failures)
        self.subscriptions = SubscriptionManager(
            store=self.store,
            clock=self.clock,
            lock=self.lock,
            chaos=self.chaos,
            delivery_log=self.delivery_log,
            settings=self.settings,
            base_url=config.base_url,
            fhir_version=config.fhir_version,
        )
        self.resource_types = R4_RESOURCE_TYPES | (
            R4B_EXTRA_RESOURCE_TYPES if config.fhir_version == "R4B" else frozenset()
        )
        self.system_search = True
        self._counter_lock = threading.Lock()
        self._interactions: Counter[str] = Counter()
        self._interactions_by_type: Counter[str] = Counter()
        self._seed_topics()

    def _seed_topics(self) -> None:
        """The server's own topics, stored as discoverable resources (fixed ids)."""
        if not (self.config.builtin_topics and self.config.supports_subscriptions):
            return
        for url, focus_type in TOPICS.items():
            resource = builtin_topic_resource(url, focus_type, self.config.fhir_version)
            topic_id = f"topic-{focus_type.lower()}-change"
            self.store.put(resource["resourceType"], topic_id, {**resource, "id": topic_id}, None)

    def topic_urls(self) -> list[str]:
        """Canonical URLs of every topic stored here (for the CapabilityStatement)."""
        return sorted(self.subscriptions.topics())

    def count(self, interaction: str, type_: str | None = None) -> None:
        """Tally one FHIR interaction for `/_admin/stats`."""
        with self._counter_lock:
            self._interactions[interaction] += 1
            if type_:
                self._interactions_by_type[f"{type_}.{interaction}"] += 1

    def update_settings(self, options: dict[str, Any]) -> None:
        """Apply `/_admin/settings`; unknown names or bad values are rejected."""
        unknown = sorted(
            set(options)
            - {
                "supports_events",
                "max_delivery_failures",
                "token_lifetime",
                "system_search",
                "delivery_retries",
                "retry_backoff_seconds",
            }
        )
        if unknown:
            raise InvalidRequestError(f"Unknown settings: {', '.join(unknown)}")
        if "max_delivery_failures" in options:
            value = options["max_delivery_failures"]
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidRequestError("max_delivery_failures must be a positive integer")
            self.settings.max_delivery_failures = value
        if "delivery_retries" in options:
            retries = options["delivery_retries"]
            if isinstance(retries, bool) or not isinstance(retries, int) or not 0 <= retries <= 10:
                raise InvalidRequestError("delivery_retries must be an integer from 0 to 10")
            self.settings.retry.retries = retries
        if "retry_backoff_seconds" in options:
            backoff = options["retry_backoff_seconds"]
            if isinstance(backoff, bool) or not isinstance(backoff, int | float):
                raise InvalidRequestError("retry_backoff_seconds must be a number")
            if not 0 <= backoff <= 10:
                raise InvalidRequestError("retry_backoff_seconds must be from 0 to 10")
            self.settings.retry.backoff_seconds = float(backoff)
        if "supports_events" in options:
            self.settings.supports_events = bool(options["supports_events"])
        if "system_search" in options:
            # False: like Epic, refuse clinical searches without a patient, location or date.
            self.system_search = bool(options["system_search"])
        if "token_lifetime" in options:
            lifetime = options["token_lifetime"]
            if isinstance(lifetime, bool) or not isinstance(lifetime, int) or lifetime < 1:
                raise InvalidRequestError("token_lifetime must be a positive integer")
            self.auth.token_lifetime_seconds = lifetime

    def stats(self) -> dict[str, Any]:
        """Counters tests can assert on (tokens, requests, deliveries)."""
        with self._counter_lock:
            interactions = dict(self._interactions)
            by_type = dict(self._interactions_by_type)
        deliveries = self.delivery_log.entries()
        return {
            "tokens_issued": self.auth.tokens_issued,
            "requests_by_interaction": interactions,
            "requests_by_type_and_interaction": by_type,
            "deliveries_attempted": sum(1 for entry in deliveries if not entry["dropped"]),
            "deliveries_dropped": sum(1 for entry in deliveries if entry["dropped"]),
            "settings": {
                "supports_events": self.settings.supports_events,
                "max_delivery_failures": self.settings.max_delivery_failures,
                "delivery_retries": self.settings.retry.retries,
                "retry_backoff_seconds": self.settings.retry.backoff_seconds,
                "token_lifetime": self.auth.token_lifetime_seconds,
                "system_search": self.system_search,
            },
            "chaos": self.chaos.as_dict(),
        }

    def reset(self) -> None:
        """Back to a freshly started server (start-up options are restored)."""
        self.subscriptions.reset()
        with self.lock:
            self.store.reset()
            self._seed_topics()
            self.pager.reset()
            self.auth.reset()
            self.delivery_log.clear()
            self.chaos.update(
                {
                    "duplicate": 0,
                    "drop": 0,
                    "reorder_window": 0,
                    "drop_next": 0,
                    "duplicate_all": False,
                    "heartbeat_delay": 0,
                    "latency": 0,
                    "seed": None,
                }
            )
            self.settings.supports_events = self.config.supports_events
            self.system_search = True
            self.settings.max_delivery_failures = self.config.max_delivery_failures
            defaults = RetryPolicy()
            self.settings.retry.retries = defaults.retries
            self.settings.retry.backoff_seconds = defaults.backoff_seconds
        with self._counter_lock:
            self._interactions.clear()
            self._interactions_by_type.clear()
