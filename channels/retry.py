"""One retry layer: adapters try once, the delivery lease-and-requeue loop retries.

A provider call is never retried inside an adapter. Retrying there (sleeping between tries)
stacked on top of the pipeline's own retries multiplied the calls per message and held a
worker slot while it slept. Instead an adapter raises
:class:`~channels.base.TransientChannelError` carrying the provider's hint of when to come
back (``retry_after``, from ``Retry-After``), and the caller requeues the message with a
lease that honours it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

Sleep = Callable[[float], None]
"""An injectable ``time.sleep`` (the rate limiter's wait for a token)."""

MAX_RETRY_AFTER_SECONDS = 3600.0
"""A provider hint beyond this is capped: the requeue loop still comes back within an hour."""


def retry_after_seconds(header: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait according to an HTTP ``Retry-After`` value, or None if absent/unusable.

    RFC 9110 allows delay-seconds (``"120"``) or an HTTP-date; a date in the past means 0.
    """
    if header is None:
        return None
    value = header.strip()
    if not value:
        return None
    seconds: float | None
    try:
        seconds = float(value)
    except ValueError:
        seconds = _seconds_until(value, now or datetime.now(UTC))
    if seconds is None or seconds != seconds:  # unparseable or NaN
        return None
    return min(max(0.0, seconds), MAX_RETRY_AFTER_SECONDS)


def _seconds_until(http_date: str, now: datetime) -> float | None:
    try:
        moment = parsedate_to_datetime(http_date)
    except (TypeError, ValueError, IndexError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - now).total_seconds()
