"""RedisTokenBucket against the real Redis (DB 5), with sleeping recorded not performed."""

from __future__ import annotations

import itertools

import pytest

from channels.ratelimit import NoLimit, RateLimitTimeoutError, RedisTokenBucket
from tests.channels.conftest import RecordingSleep


def bucket(
    redis_url: str, key: str, sleep: RecordingSleep, rate: float = 10.0, burst: int = 3
) -> RedisTokenBucket:
    return RedisTokenBucket(redis_url, key, rate_per_second=rate, burst=burst, sleep=sleep)


def test_burst_is_granted_without_waiting(
    redis_url: str, redis_prefix: str, recording_sleep: RecordingSleep
) -> None:
    limiter = bucket(redis_url, redis_prefix + "sms", recording_sleep, burst=3)

    waits = [limiter.acquire() for _ in range(3)]

    assert waits == [0.0, 0.0, 0.0]
    assert recording_sleep.delays == []


def test_calls_beyond_burst_are_paced_one_interval_apart(
    redis_url: str, redis_prefix: str, recording_sleep: RecordingSleep
) -> None:
    limiter = bucket(redis_url, redis_prefix + "sms", recording_sleep, rate=1.0, burst=3)

    waits = [limiter.acquire() for _ in range(7)]

    assert waits[:3] == [0.0, 0.0, 0.0]
    paced = waits[3:]
    assert len(recording_sleep.delays) == 4
    assert all(later > earlier for earlier, later in itertools.pairwise(paced))
    gaps = [later - earlier for earlier, later in itertools.pairwise(paced)]
    assert gaps == pytest.approx([1.0, 1.0, 1.0], abs=0.25)


def test_workers_sharing_a_key_share_one_budget(
    redis_url: str, redis_prefix: str, recording_sleep: RecordingSleep
) -> None:
    worker_a = bucket(redis_url, redis_prefix + "sms", recording_sleep, rate=1.0, burst=2)
    worker_b = bucket(redis_url, redis_prefix + "sms", recording_sleep, rate=1.0, burst=2)

    waits = [worker_a.acquire(), worker_b.acquire(), worker_a.acquire(), worker_b.acquire()]

    assert waits[:2] == [0.0, 0.0]
    assert waits[2] > 0.0
    assert waits[3] > waits[2]


def test_different_keys_do_not_limit_each_other(
    redis_url: str, redis_prefix: str, recording_sleep: RecordingSleep
) -> None:
    clinic_a = bucket(redis_url, redis_prefix + "clinic-a", recording_sleep, burst=1)
    clinic_b = bucket(redis_url, redis_prefix + "clinic-b", recording_sleep, burst=1)

    assert (clinic_a.acquire(), clinic_b.acquire()) == (0.0, 0.0)


def test_slot_beyond_timeout_is_refused_without_consuming_it(
    redis_url: str, redis_prefix: str, recording_sleep: RecordingSleep
) -> None:
    limiter = bucket(redis_url, redis_prefix + "sms", recording_sleep, rate=1.0, burst=1)
    limiter.acquire()

    with pytest.raises(RateLimitTimeoutError) as refused:
        limiter.acquire(timeout=0.1)
    next_wait = limiter.reserve()

    assert refused.value.wait_needed == pytest.approx(1.0, abs=0.05)
    assert next_wait == pytest.approx(1.0, abs=0.05)


def test_bucket_key_expires_when_idle(
    redis_url: str, redis_prefix: str, recording_sleep: RecordingSleep
) -> None:
    limiter = bucket(redis_url, redis_prefix + "sms", recording_sleep)
    limiter.acquire()

    assert limiter._redis.pttl(redis_prefix + "sms") > 0


@pytest.mark.parametrize(
    ("rate", "burst"),
    [pytest.param(0.0, 1, id="zero-rate"), pytest.param(1.0, 0, id="zero-burst")],
)
def test_nonsensical_configuration_is_refused(redis_url: str, rate: float, burst: int) -> None:
    with pytest.raises(ValueError):
        RedisTokenBucket(redis_url, "unused", rate_per_second=rate, burst=burst)


def test_no_limit_never_waits() -> None:
    assert [NoLimit().acquire() for _ in range(100)] == [0.0] * 100
