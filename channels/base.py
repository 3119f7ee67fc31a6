"""The one small interface every delivery provider sits behind.

The pipeline only ever sees :class:`ChannelAdapter`; which provider is behind it
is a settings decision. Errors are split into transient (retry later) and
permanent (do not retry; maybe fall back or mark the contact unusable).
"""

from __future__ import annotations

import abc
import html
from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar, Protocol

from rules.templates import with_unsubscribe_line


@dataclass(frozen=True)
class ListUnsubscribe:
    """Where a recipient unsubscribes from an email (RFC 2369 / RFC 8058 one-click).

    ``url`` is the signed one-click HTTPS address the mail client POSTs to; ``mailto`` an
    optional mailbox (read by people) offered alongside it.
    """

    url: str
    mailto: str | None = None

    def close_text(self, text: str) -> str:
        """``text`` with the link on its own last line (the template says "the link below")."""
        return with_unsubscribe_line(text, self.url)

    def close_html(self, body: str) -> str:
        """``body`` with the link as the last paragraph before ``</body>``."""
        url = html.escape(self.url, quote=True)
        paragraph = f'<p><small><a href="{url}">{url}</a></small></p>\n'
        closing = body.lower().rfind("</body>")
        if closing == -1:
            return body + paragraph
        return body[:closing] + paragraph + body[closing:]


@dataclass(frozen=True)
class OutboundMessage:
    """A message ready to leave. ``message_id`` is our idempotency key for the send.

    An email carries ``list_unsubscribe``; the email adapter refuses one without it. Its
    ``text``/``html`` are sent as given (the caller closes them with the link, so what the
    EHR records is what the patient got).
    """

    message_id: str
    channel: str
    to: str
    text: str
    subject: str | None = None
    html: str | None = None
    status_callback_url: str | None = None
    list_unsubscribe: ListUnsubscribe | None = None


class LedgerRow(Protocol):
    """A send-ledger row (an outreach message, a reply SMS) as reconciliation reads it."""

    @property
    def id(self) -> str: ...

    @property
    def created_at(self) -> datetime: ...

    @property
    def provider_message_id(self) -> str | None: ...


@dataclass(frozen=True)
class SentRecord:
    """What our own send ledger (the database row) says was handed to a provider.

    Reconciliation after a crash matches the provider's records against these facts, never
    against a cache: ``to`` and ``text`` exactly as sent, and the window in which any attempt
    of this message can have started (``not_before`` .. ``not_after``, timezone-aware).
    ``provider_message_id`` is set when our own records already name the provider's id.
    """

    message_id: str
    to: str
    text: str
    not_before: datetime
    not_after: datetime
    provider_message_id: str | None = None

    @classmethod
    def of_row(cls, row: LedgerRow, *, to: str, text: str, now: datetime) -> SentRecord:
        """What a ledger row holds: any attempt of it started between its creation and now."""
        return cls(
            message_id=row.id,
            to=to,
            text=text,
            not_before=row.created_at,
            not_after=now,
            provider_message_id=row.provider_message_id,
        )


@dataclass(frozen=True)
class SendReceipt:
    """What the provider told us when it accepted the message."""

    provider: str
    provider_message_id: str
    status: str


class ChannelError(Exception):
    """Base class for delivery failures. ``code`` is safe to log (no PHI)."""

    retryable = False

    def __init__(self, code: str, detail: str = "") -> None:
        super().__init__(f"{code}: {detail}" if detail else code)
        self.code = code
        self.detail = detail


class TransientChannelError(ChannelError):
    """Worth retrying later: timeouts, 429, 5xx, connection refused.

    Adapters try once and raise this; the caller's lease-and-requeue loop is the only retry
    layer. ``retry_after`` is the provider's own hint in seconds (``Retry-After``), or None.
    """

    retryable = True

    def __init__(self, code: str, detail: str = "", retry_after: float | None = None) -> None:
        super().__init__(code, detail)
        self.retry_after = retry_after


class PermanentChannelError(ChannelError):
    """Never retry. ``reason`` is one of: unsubscribed, invalid-address, rejected."""

    def __init__(self, code: str, reason: str, detail: str = "") -> None:
        super().__init__(code, detail)
        self.reason = reason


class ChannelAdapter(abc.ABC):
    """A provider for one channel ("sms" or "email")."""

    provider: str
    channel: str
    resend_is_safe: ClassVar[bool] = False
    """True when sending the same message again cannot put a second copy in front of the
    recipient (the outbox dedupes by id; email carries a Message-ID derived from our id,
    which mail systems collapse duplicates on). Reconciliation then resends after a crash
    instead of leaving the outcome ``unknown``."""

    @abc.abstractmethod
    def send(self, message: OutboundMessage) -> SendReceipt:
        """Hand the message to the provider once; raise a :class:`ChannelError` on failure.

        Never retries internally: a :class:`TransientChannelError` goes back to the caller.
        """

    def find_sent(self, message_id: str, record: SentRecord | None = None) -> SendReceipt | None:
        """Look up an earlier send after a crash, where the provider allows it.

        ``record`` is what our ledger row holds; adapters that can search the provider match
        on it. None means "the lookup succeeded and found nothing"; a lookup that could not
        be made raises :class:`TransientChannelError` (the caller must not resend then).
        """
        return None

    @classmethod
    def can_look_up(cls) -> bool:
        """Whether this adapter can ask its provider what it sent (overrides ``find_sent``)."""
        return cls.find_sent is not ChannelAdapter.find_sent
