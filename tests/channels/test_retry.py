"""Retry-After: the provider's hint of when the delivery loop should come back."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from channels.retry import MAX_RETRY_AFTER_SECONDS, retry_after_seconds

NOW = datetime(2026, 12, 1, 14, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        pytest.param("2", 2.0, id="delay-seconds"),
        pytest.param(" 1.5 ", 1.5, id="fractional-with-spaces"),
        pytest.param("Tue, 01 Dec 2026 14:00:30 GMT", 30.0, id="http-date"),
        pytest.param("Tue, 01 Dec 2026 13:59:00 GMT", 0.0, id="http-date-in-the-past"),
        pytest.param("-5", 0.0, id="negative-is-now"),
    ],
)
def test_retry_after_is_read_as_seconds_or_an_http_date(header: str, expected: float) -> None:
    assert retry_after_seconds(header, now=NOW) == expected


@pytest.mark.parametrize("header", [None, "", "soon", "nan"])
def test_a_missing_or_unreadable_retry_after_is_none(header: str | None) -> None:
    assert retry_after_seconds(header, now=NOW) is None


def test_a_huge_retry_after_is_capped_so_the_message_comes_back_within_the_hour() -> None:
    assert retry_after_seconds("86400", now=NOW) == MAX_RETRY_AFTER_SECONDS
