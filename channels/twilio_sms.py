"""SMS through Twilio's Programmable Messaging REST API, using plain httpx.

We call ``POST /2010-04-01/Accounts/{AccountSid}/Messages.json`` directly instead of using the
twilio SDK: it is one form-encoded request, and owning it lets us control timeouts, rate
limiting and what gets logged (ids and error codes only, never numbers or text).

**One try per call.** ``send`` POSTs once. A 429/5xx/timeout raises
:class:`~channels.base.TransientChannelError` (with ``retry_after`` from ``Retry-After``);
the delivery lease-and-requeue loop is the only retry layer.

**Duplicate protection** (Twilio has no idempotency key). The database row is the send
ledger; everything here only serves to recognise a message Twilio already has:

* ``find_sent(message_id, record)`` reconciles a row left in ``sending`` by what the row
  holds (:class:`~channels.base.SentRecord`: recipient, text, time window). It lists
  Messages filtered by ``To`` (and ``From``) and ``DateSent>`` = the window's first day and
  matches an outbound message with the same body created inside the window; then, because a
  message still queued at Twilio has no ``date_sent`` yet (or was sent between the two
  queries), it reads the newest Messages to that number without the date filter, back to
  the window's start. Found → the receipt; the lookup succeeded and found
  nothing → None (safe to resend); the lookup failed → ``TransientChannelError`` (defer).
* The journal (:mod:`channels.send_journal`) is a cache: an intent is noted before each
  create and the SID after acceptance, so a known SID is fetched directly. A journal that
  forgot (Redis restarted empty) only makes the lookup slower, never "not sent".
* Our message id travels in the StatusCallback URL query (``bridge_message_id``), so every
  status callback can be tied to our message even if we crashed before storing the SID.
* An ambiguous failure (timeout or 5xx after the request went out) is looked up once before
  raising, and a later ``send`` of a message id the journal knows looks the earlier attempt
  up first, so a slow-but-successful create is not sent twice.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from datetime import UTC, datetime
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
    SentRecord,
    TransientChannelError,
)
from channels.ratelimit import NoLimit, RateLimiter, RateLimitTimeoutError
from channels.send_journal import InMemorySendJournal, SendIntent, SendJournal
from channels.twilio_errors import error_from_response, permanent_reason

logger = logging.getLogger(__name__)

API_VERSION = "2010-04-01"
CALLBACK_ID_PARAM = "bridge_message_id"
FAILED_STATUSES = frozenset({"failed", "undelivered", "canceled"})


class TwilioSmsAdapter(ChannelAdapter):
    """Send SMS via Twilio (one try per call), with shared rate limiting and reconciliation."""

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
        journal: SendJournal | None = None,
        rate_limit_timeout: float = 30.0,
        reconcile_skew_seconds: float = 300.0,
        reconcile_max_pages: int = 5,
    ) -> None:
        """Configure the account; one of ``from_number``/``messaging_service_sid`` is required.

        ``journal`` (Redis in production) lets a lookup fetch a known SID directly; without
        it reconciliation still works from the caller's :class:`SentRecord`.
        ``reconcile_skew_seconds`` widens the time window for clock differences with Twilio.
        """
        if not from_number and not messaging_service_sid:
            raise ValueError("either from_number or messaging_service_sid is required")
        self.account_sid = account_sid
        self.from_number = from_number
        self.messaging_service_sid = messaging_service_sid
        self.status_callback_url = status_callback_url
        self.rate_limiter: RateLimiter = rate_limiter or NoLimit()
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
        """Create the message at Twilio with one POST; raise on failure (no retries here).

        A message id the journal already knows is looked up first, so an earlier attempt
        that reached Twilio is returned instead of texting the patient again.
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
        self._wait_for_rate_limit()
        self.journal.record_intent(intent)
        outcome, ambiguous = self._attempt_create(self._create_form(message), message.message_id)
        if isinstance(outcome, SendReceipt):
            return outcome
        if ambiguous:
            found = self._reconcile_quietly(intent)
            if found is not None:
                return found
        logger.warning(
            "twilio send failed; the caller retries message_id=%s code=%s",
            message.message_id,
            outcome.code,
        )
        raise outcome

    def find_sent(self, message_id: str, record: SentRecord | None = None) -> SendReceipt | None:
        """Return the receipt of an earlier create of the message, or None if Twilio has none.

        With ``record`` (what our ledger row holds) Twilio is searched by recipient, text and
        time window whatever the journal remembers. Without it only a journalled intent can
        be looked up. Raises :class:`TransientChannelError` if Twilio cannot be asked right
        now: the caller must not assume "not sent" then.
        """
        intent = self.journal.get(message_id)
        known_sid = (record.provider_message_id if record is not None else None) or (
            intent.provider_message_id if intent is not None else None
        )
        if known_sid is not None:
            receipt = self._fetch_if_exists(known_sid)
            if receipt is not None:
                return receipt
        if record is not None:
            return self._search_provider(
                message_id,
                to=record.to,
                body_sha256=SendIntent.body_digest(record.text),
                not_before=record.not_before.timestamp(),
                not_after=record.not_after.timestamp(),
            )
        if intent is not None:
            return self._search_intent(intent)
        return None

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
        """Receipt of an earlier attempt of the same message that reached Twilio, if any.

        Raises :class:`TransientChannelError` when Twilio cannot be asked: sending blind
        after an attempt whose outcome we do not know could text the patient twice.
        """
        sid = previous.provider_message_id
        if sid is None:
            return self._search_intent(previous)
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
        self, form: dict[str, str], message_id: str
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
            "twilio create failed message_id=%s http=%d code=%s",
            message_id,
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

    def _fetch_if_exists(self, sid: str) -> SendReceipt | None:
        """The receipt for ``sid``; None if Twilio does not know it (a stale hint)."""
        try:
            return self._fetch_receipt(sid)
        except PermanentChannelError:
            logger.info("twilio sid hint not found sid=%s", sid)
            return None

    def _reconcile_quietly(self, intent: SendIntent) -> SendReceipt | None:
        try:
            return self._search_intent(intent)
        except ChannelError as lookup_failed:
            logger.info(
                "twilio reconcile skipped message_id=%s code=%s",
                intent.message_id,
                lookup_failed.code,
            )
            return None

    def _search_intent(self, intent: SendIntent) -> SendReceipt | None:
        return self._search_provider(
            intent.message_id,
            to=intent.to,
            body_sha256=intent.body_sha256,
            not_before=intent.started_at,
            not_after=None,
        )

    def _search_provider(
        self,
        message_id: str,
        *,
        to: str,
        body_sha256: str,
        not_before: float,
        not_after: float | None,
    ) -> SendReceipt | None:
        """Find our message in Twilio's list: by To and DateSent, then among unsent ones."""
        earliest = not_before - self.reconcile_skew_seconds
        latest = None if not_after is None else not_after + self.reconcile_skew_seconds
        first_day = datetime.fromtimestamp(earliest, UTC).date().isoformat()
        sent_since = {**self._list_filter(to), "DateSent>": first_day}
        for resource in self._messages(sent_since):
            if _matches(resource, to, body_sha256, earliest, latest):
                return self._found(message_id, resource)
        for resource in self._messages(self._list_filter(to)):
            if _matches(resource, to, body_sha256, earliest, latest):
                return self._found(message_id, resource)
            if _entirely_before(resource, earliest):
                break
        return None

    def _found(self, message_id: str, resource: dict[str, Any]) -> SendReceipt:
        sid = str(resource["sid"])
        self.journal.record_accepted(message_id, sid)
        logger.info("twilio reconciled message_id=%s sid=%s", message_id, sid)
        return SendReceipt(
            provider=self.provider,
            provider_message_id=sid,
            status=str(resource.get("status") or "accepted"),
        )

    def _list_filter(self, to: str) -> dict[str, str]:
        params = {"To": to, "PageSize": "50"}
        if self.from_number and not self.messaging_service_sid:
            params["From"] = self.from_number
        return params

    def _messages(self, params: dict[str, str]) -> Iterator[dict[str, Any]]:
        """Messages matching ``params``, newest first, a bounded number of pages."""
        path: str | None = f"{self._messages_path}.json"
        query: dict[str, str] | None = params
        for _page in range(self.reconcile_max_pages):
            if path is None:
                return
            page = self._get_json(path, params=query)
            yield from (m for m in page.get("messages", []) if isinstance(m, dict))
            next_uri = page.get("next_page_uri")
            path, query = (str(next_uri), None) if next_uri else (None, None)

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


def _matches(
    resource: dict[str, Any], to: str, body_sha256: str, earliest: float, latest: float | None
) -> bool:
    direction = str(resource.get("direction") or "")
    body = resource.get("body")
    if not (
        direction.startswith("outbound")
        and resource.get("to") == to
        and isinstance(body, str)
        and SendIntent.body_digest(body) == body_sha256
        and "sid" in resource
    ):
        return False
    created = _created_epoch(resource)
    if created is None:
        return True
    return created >= earliest and (latest is None or created <= latest)


def _entirely_before(resource: dict[str, Any], earliest: float) -> bool:
    """Created and sent before the window: every later entry of the list is older still.

    Holds whether Twilio orders the list by date_sent or date_created (newest first); a
    message without a date_sent (still queued) never ends the scan.
    """
    created = _created_epoch(resource)
    sent = _epoch(resource.get("date_sent"))
    return created is not None and sent is not None and created < earliest and sent < earliest


def _created_epoch(resource: dict[str, Any]) -> float | None:
    return _epoch(resource.get("date_created"))


def _epoch(value: object) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        return parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None


def _as_int(value: object) -> int | None:
    try:
        return int(str(value))
    except ValueError:
        return None
