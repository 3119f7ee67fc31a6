"""SMS through Twilio's Programmable Messaging REST API, using plain httpx.

We call ``POST /2010-04-01/Accounts/{AccountSid}/Messages.json`` directly instead of using the
twilio SDK: it is one form-encoded request, and owning it lets us control retries, rate
limiting, timeouts and what gets logged (ids and error codes only, never numbers or text).

Duplicate protection (Twilio has no idempotency key):

* Before each create, a :class:`~channels.send_journal.SendIntent` (our id, recipient, body
  hash, time) is written to the journal; after acceptance the SID is added.
* Our message id travels in the StatusCallback URL query (``bridge_message_id``), so every
  status callback can be tied to our message even if we crashed before storing the SID.
* ``find_sent`` returns the journalled SID, or else lists recent Messages filtered by To (and
  From) and matches an outbound message with the same body hash created after the intent.
  We do not filter on DateSent: a message still queued at Twilio has no date_sent yet.
* An ambiguous failure (timeout or 5xx after the request went out) is reconciled the same way
  before retrying, so a slow-but-successful create is not sent twice.
* ``send`` of a message id the journal already knows returns the earlier receipt.

The journal must be shared and durable (``RedisSendJournal``) for this to survive a crash;
with the in-memory default, ``find_sent`` in a restarted process returns None.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx

from channels.base import (
    ChannelAdapter,
    ChannelError,
    OutboundMessage,
    PermanentChannelError,
    SendReceipt,
    TransientChannelError,
)
from channels.ratelimit import NoLimit, RateLimiter, RateLimitTimeoutError
from channels.retry import RetryPolicy
from channels.send_journal import InMemorySendJournal, SendIntent, SendJournal
from channels.twilio_errors import error_from_response, permanent_reason

logger = logging.getLogger(__name__)

API_VERSION = "2010-04-01"
CALLBACK_ID_PARAM = "bridge_message_id"
FAILED_STATUSES = frozenset({"failed", "undelivered", "canceled"})


class TwilioSmsAdapter(ChannelAdapter):
    """Send SMS via Twilio, with in-adapter backoff, shared rate limiting and reconciliation."""

    provider = "twilio"
    channel = "sms"

    def __init__(
        self,
        *,
        account_sid: str,
        auth_token: str,
        from_number: str | None = None,
        messaging_service_sid: str | None = None,
        base_url: str = "https://api.twilio.com",
        status_callback_url: str | None = None,
        rate_limiter: RateLimiter | None = None,
        timeout: float = 10,
        retry: RetryPolicy | None = None,
        journal: SendJournal | None = None,
        rate_limit_timeout: float = 30.0,
        reconcile_skew_seconds: float = 300.0,
        reconcile_max_pages: int = 5,
    ) -> None:
        """Configure the account; one of ``from_number``/``messaging_service_sid`` is required.

        ``journal`` should be a shared, durable one (Redis) in production so ``find_sent``
        works after a crash; the default in-memory journal only helps within one process.
        """
        if not from_number and not messaging_service_sid:
            raise ValueError("either from_number or messaging_service_sid is required")
        self.account_sid = account_sid
        self.from_number = from_number
        self.messaging_service_sid = messaging_service_sid
        self.status_callback_url = status_callback_url
        self.rate_limiter: RateLimiter = rate_limiter or NoLimit()
        self.retry = retry or RetryPolicy()
        self.journal: SendJournal = journal or InMemorySendJournal()
        self.rate_limit_timeout = rate_limit_timeout
        self.reconcile_skew_seconds = reconcile_skew_seconds
        self.reconcile_max_pages = reconcile_max_pages
        self._messages_path = f"/{API_VERSION}/Accounts/{account_sid}/Messages"
        self._client = httpx.Client(
            base_url=base_url.rstrip("/"),
            auth=(account_sid, auth_token),
            timeout=timeout,
            headers={"User-Agent": "fhir-bridge-channels/0.1", "Accept": "application/json"},
        )

    def close(self) -> None:
        """Release pooled HTTP connections."""
        self._client.close()

    def send(self, message: OutboundMessage) -> SendReceipt:
        """Create the message at Twilio, retrying transient failures with backoff.

        Idempotent by ``message_id`` as far as the journal allows: a message already accepted
        is not created again, and a send interrupted by a crash is reconciled first.
        """
        if message.channel != self.channel:
            raise PermanentChannelError("channel-mismatch", reason="rejected")
        previous = self.journal.get(message.message_id)
        if previous is not None:
            earlier = self._earlier_send(previous)
            if earlier is not None:
                return earlier
        intent = SendIntent(
            message_id=message.message_id,
            to=message.to,
            body_sha256=SendIntent.body_digest(message.text),
            started_at=previous.started_at if previous is not None else time.time(),
        )
        self.journal.record_intent(intent)
        form = self._create_form(message)
        attempt = 1
        while True:
            self._wait_for_rate_limit()
            outcome, ambiguous = self._attempt_create(form, message.message_id, attempt)
            if isinstance(outcome, SendReceipt):
                return outcome
            if attempt >= self.retry.max_attempts:
                logger.warning(
                    "twilio send gave up message_id=%s code=%s attempts=%d",
                    message.message_id,
                    outcome.code,
                    attempt,
                )
                raise outcome
            if ambiguous:
                found = self._reconcile_quietly(intent)
                if found is not None:
                    return found
            self.retry.sleep(self.retry.delay_before_retry(attempt, outcome.retry_after))
            attempt += 1

    def find_sent(self, message_id: str) -> SendReceipt | None:
        """Return the receipt of an earlier create of ``message_id``, or None if none happened.

        Raises :class:`TransientChannelError` if Twilio cannot be asked right now (the caller
        must not assume "not sent" in that case).
        """
        intent = self.journal.get(message_id)
        if intent is None:
            return None
        if intent.provider_message_id is not None:
            return self._fetch_receipt(intent.provider_message_id)
        return self._search_provider(intent)

    def callback_url_for(self, message: OutboundMessage) -> str | None:
        """StatusCallback URL for ``message``, carrying our message id in the query."""
        base = message.status_callback_url or self.status_callback_url
        if base is None:
            return None
        parts = urlsplit(base)
        query = [(k, v) for k, v in parse_qsl(parts.query) if k != CALLBACK_ID_PARAM]
        query.append((CALLBACK_ID_PARAM, message.message_id))
        return urlunsplit(parts._replace(query=urlencode(query)))

    def _earlier_send(self, previous: SendIntent) -> SendReceipt | None:
        """Receipt of an earlier attempt of the same message that reached Twilio, if any."""
        sid = previous.provider_message_id
        if sid is None:
            return self._reconcile_quietly(previous)
        logger.info("twilio duplicate send skipped message_id=%s sid=%s", previous.message_id, sid)
        try:
            return self._fetch_receipt(sid)
        except ChannelError:
            return SendReceipt(provider=self.provider, provider_message_id=sid, status="queued")

    def _create_form(self, message: OutboundMessage) -> dict[str, str]:
        form = {"To": message.to, "Body": message.text}
        if self.messaging_service_sid:
            form["MessagingServiceSid"] = self.messaging_service_sid
        if self.from_number:
            form["From"] = self.from_number
        callback_url = self.callback_url_for(message)
        if callback_url is not None:
            form["StatusCallback"] = callback_url
        return form

    def _wait_for_rate_limit(self) -> None:
        try:
            self.rate_limiter.acquire(self.rate_limit_timeout)
        except RateLimitTimeoutError as busy:
            raise TransientChannelError(
                "rate-limited", detail="local send rate exhausted", retry_after=busy.wait_needed
            ) from None

    def _attempt_create(
        self, form: dict[str, str], message_id: str, attempt: int
    ) -> tuple[SendReceipt, bool] | tuple[TransientChannelError, bool]:
        """One POST. Returns (receipt, False) or (transient error, whether it is ambiguous)."""
        try:
            response = self._client.post(f"{self._messages_path}.json", data=form)
        except httpx.ConnectError as refused:
            return TransientChannelError("twilio-connect", detail=type(refused).__name__), False
        except httpx.TimeoutException as timed_out:
            error = TransientChannelError("twilio-timeout", detail=type(timed_out).__name__)
            return error, not isinstance(timed_out, httpx.ConnectTimeout)
        except httpx.TransportError as broken:
            return TransientChannelError("twilio-transport", detail=type(broken).__name__), True
        if response.is_success:
            receipt = self._accepted(response, message_id)
            return receipt, False
        failure = error_from_response(response)
        logger.info(
            "twilio create failed message_id=%s attempt=%d http=%d code=%s",
            message_id,
            attempt,
            response.status_code,
            failure.code,
        )
        if isinstance(failure, TransientChannelError):
            return failure, response.status_code >= 500
        raise failure

    def _accepted(self, response: httpx.Response, message_id: str) -> SendReceipt:
        try:
            resource = response.json()
            sid = str(resource["sid"])
        except (ValueError, KeyError, TypeError):
            raise TransientChannelError("twilio-bad-response", detail="no sid") from None
        status = str(resource.get("status") or "queued")
        error_code = resource.get("error_code")
        self.journal.record_accepted(message_id, sid)
        if status in FAILED_STATUSES and error_code:
            raise PermanentChannelError(
                str(error_code), reason=permanent_reason(_as_int(error_code)), detail=status
            )
        logger.info("twilio accepted message_id=%s sid=%s status=%s", message_id, sid, status)
        return SendReceipt(provider=self.provider, provider_message_id=sid, status=status)

    def _fetch_receipt(self, sid: str) -> SendReceipt:
        resource = self._get_json(f"{self._messages_path}/{sid}.json", params=None)
        status = str(resource.get("status") or "accepted")
        return SendReceipt(provider=self.provider, provider_message_id=sid, status=status)

    def _reconcile_quietly(self, intent: SendIntent) -> SendReceipt | None:
        try:
            return self._search_provider(intent)
        except ChannelError as lookup_failed:
            logger.info(
                "twilio reconcile skipped message_id=%s code=%s",
                intent.message_id,
                lookup_failed.code,
            )
            return None

    def _search_provider(self, intent: SendIntent) -> SendReceipt | None:
        cutoff = intent.started_at - self.reconcile_skew_seconds
        for resource in self._recent_messages(intent.to):
            created = _created_epoch(resource)
            if created is not None and created < cutoff:
                break
            if _matches(resource, intent):
                sid = str(resource["sid"])
                self.journal.record_accepted(intent.message_id, sid)
                logger.info("twilio reconciled message_id=%s sid=%s", intent.message_id, sid)
                return SendReceipt(
                    provider=self.provider,
                    provider_message_id=sid,
                    status=str(resource.get("status") or "accepted"),
                )
        return None

    def _recent_messages(self, to: str) -> Iterator[dict[str, Any]]:
        """Messages to ``to`` (from our sender), newest first, a bounded number of pages."""
        params: dict[str, str] | None = {"To": to, "PageSize": "50"}
        if self.from_number and params is not None:
            params["From"] = self.from_number
        path: str | None = f"{self._messages_path}.json"
        for _page in range(self.reconcile_max_pages):
            if path is None:
                return
            page = self._get_json(path, params=params)
            yield from (m for m in page.get("messages", []) if isinstance(m, dict))
            next_uri = page.get("next_page_uri")
            path, params = (str(next_uri), None) if next_uri else (None, None)

    def _get_json(self, path: str, params: dict[str, str] | None) -> dict[str, Any]:
        try:
            response = self._client.get(path, params=params)
        except httpx.HTTPError as failed:
            raise TransientChannelError("twilio-lookup", detail=type(failed).__name__) from None
        if not response.is_success:
            raise error_from_response(response)
        try:
            body = response.json()
        except ValueError:
            raise TransientChannelError("twilio-bad-response", detail="not json") from None
        if not isinstance(body, dict):
            raise TransientChannelError("twilio-bad-response", detail="not an object")
        return body


def _matches(resource: dict[str, Any], intent: SendIntent) -> bool:
    direction = str(resource.get("direction") or "")
    body = resource.get("body")
    return (
        direction.startswith("outbound")
        and resource.get("to") == intent.to
        and isinstance(body, str)
        and SendIntent.body_digest(body) == intent.body_sha256
        and "sid" in resource
    )


def _created_epoch(resource: dict[str, Any]) -> float | None:
    created = resource.get("date_created")
    if not isinstance(created, str):
        return None
    try:
        return parsedate_to_datetime(created).timestamp()
    except (TypeError, ValueError):
        return None


def _as_int(value: object) -> int | None:
    try:
        return int(str(value))
    except ValueError:
        return None
