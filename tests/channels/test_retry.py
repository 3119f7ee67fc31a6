"""RetryPolicy: bounded exponential backoff with full jitter."""

from __future__ import annotations

import pytest

from channels.retry import RetryPolicy


def upper_bound(low: float, high: float) -> float:
    return high


def test_delay_ceiling_doubles_per_retry_up_to_max_delay() -> None:
    policy = RetryPolicy(base_delay=0.5, max_delay=3.0, jitter=upper_bound)

    delays = [policy.delay_before_retry(n) for n in range(1, 6)]

    assert delays == [0.5, 1.0, 2.0, 3.0, 3.0]


def test_jitter_draws_between_zero_and_the_ceiling() -> None:
    draws: list[tuple[float, float]] = []

    def recording_jitter(low: float, high: float) -> float:
        draws.append((low, high))
        return low

    policy = RetryPolicy(base_delay=1.0, jitter=recording_jitter)

    policy.delay_before_retry(3)

    assert draws == [(0.0, 4.0)]


def test_retry_after_is_a_floor_capped_at_max_delay() -> None:
    policy = RetryPolicy(base_delay=0.1, max_delay=5.0, jitter=lambda low, high: low)

    assert policy.delay_before_retry(1, retry_after=2.0) == 2.0
    assert policy.delay_before_retry(1, retry_after=60.0) == 5.0


def test_at_least_one_attempt_is_required() -> None:
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=0)
