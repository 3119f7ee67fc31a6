"""Notes of "about to send" / "provider accepted as X": a cache that speeds up reconciliation.

Twilio's Messages API has no idempotency key: if a worker dies between POSTing a message and
recording the returned SID, a naive retry texts the patient twice. Before each create the
adapter notes an *intent* (our message id, recipient, a SHA-256 of the body, the time), and
after acceptance the provider id, so a lookup can fetch the SID directly.

The journal is **not** the record. The database row (``sending``, with address, text and
time) is the send ledger; reconciliation searches the provider by what the row holds, so a
journal that forgot an entry (Redis restarted empty, evicted, failed over) never turns into
"not sent". Accordingly journal errors are swallowed and logged: a Redis outage must not
stop a send. Entries expire after a few days; the recipient is stored but the body is only
hashed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from dataclasses import asdict, dataclass, replace
from typing import Protocol

import redis

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SendIntent:
    """What we were about to send, enough to recognise it in the provider's message list."""

    message_id: str
    to: str
    body_sha256: str
    started_at: float
    provider_message_id: str | None = None

    @staticmethod
    def body_digest(body: str) -> str:
        """Hash of a message body, so the journal never holds the text itself."""
        return hashlib.sha256(body.encode("utf-8")).hexdigest()


class SendJournal(Protocol):
    """Where intents live; must survive the worker process for reconciliation to work."""

    def record_intent(self, intent: SendIntent) -> None:
        """Remember that a send of ``intent.message_id`` is starting (overwrites)."""
        ...

    def record_accepted(self, message_id: str, provider_message_id: str) -> None:
        """Attach the provider's id once the provider has accepted the message."""
        ...

    def get(self, message_id: str) -> SendIntent | None:
        """Return the intent for ``message_id``, if one is remembered."""
        ...


class InMemorySendJournal:
    """Process-local journal: fine for tests and single-process development only."""

    def __init__(self) -> None:
        self._intents: dict[str, SendIntent] = {}
        self._lock = threading.Lock()

    def record_intent(self, intent: SendIntent) -> None:
        """Remember the intent in this process."""
        with self._lock:
            self._intents[intent.message_id] = intent

    def record_accepted(self, message_id: str, provider_message_id: str) -> None:
        """Attach the provider id to a remembered intent."""
        with self._lock:
            intent = self._intents.get(message_id)
            if intent is not None:
                self._intents[message_id] = replace(intent, provider_message_id=provider_message_id)

    def get(self, message_id: str) -> SendIntent | None:
        """Look the intent up."""
        with self._lock:
            return self._intents.get(message_id)


class RedisSendJournal:
    """Journal shared by all workers, one Redis key per message; best effort (a cache)."""

    def __init__(
        self,
        redis_url: str,
        *,
        prefix: str = "fhir-bridge:sms-intent:",
        ttl_seconds: int = 3 * 24 * 3600,
        client: redis.Redis | None = None,
    ) -> None:
        """Entries expire after ``ttl_seconds``; keep it longer than the pipeline's retries."""
        self._redis = client or redis.Redis.from_url(redis_url)
        self._prefix = prefix
        self._ttl_seconds = ttl_seconds

    def record_intent(self, intent: SendIntent) -> None:
        """Store the intent with an expiry; a Redis failure is logged, not raised."""
        try:
            self._redis.set(
                self._key(intent.message_id), json.dumps(asdict(intent)), ex=self._ttl_seconds
            )
        except redis.RedisError as failed:
            _log_unavailable("record", intent.message_id, failed)

    def record_accepted(self, message_id: str, provider_message_id: str) -> None:
        """Attach the provider id, keeping the rest of the intent."""
        intent = self.get(message_id)
        if intent is not None:
            self.record_intent(replace(intent, provider_message_id=provider_message_id))

    def get(self, message_id: str) -> SendIntent | None:
        """Load the intent, or None if unknown, expired, unreadable or Redis is unavailable."""
        try:
            raw = self._redis.get(self._key(message_id))
        except redis.RedisError as failed:
            _log_unavailable("read", message_id, failed)
            return None
        if raw is None:
            return None
        try:
            return SendIntent(**json.loads(raw))
        except (ValueError, TypeError):
            return None

    def _key(self, message_id: str) -> str:
        return self._prefix + message_id


def _log_unavailable(operation: str, message_id: str, failed: Exception) -> None:
    logger.warning(
        "send journal unavailable operation=%s message_id=%s error=%s",
        operation,
        message_id,
        type(failed).__name__,
    )
