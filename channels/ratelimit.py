"""Send-rate limiting shared by every worker process.

Twilio queues (and eventually fails with 30001 "queue overflow") when an account or sender
exceeds its throughput, and carriers filter bursts from one long code. All Celery workers
therefore draw from one Redis token bucket. The bucket paces rather than rejects: a caller
reserves the next free slot atomically and sleeps until it, so workers are served in order
and nobody busy-polls Redis.
"""

from __future__ import annotations

import math
import time
from typing import Protocol

import redis

from channels.retry import Sleep


class RateLimitTimeoutError(Exception):
    """The next free slot is further away than the caller was willing to wait."""

    def __init__(self, wait_needed: float) -> None:
        super().__init__(f"next send slot in {wait_needed:.3f}s")
        self.wait_needed = wait_needed


class RateLimiter(Protocol):
    """Anything an adapter can ask for permission to make one provider call."""

    def acquire(self, timeout: float | None = None) -> float:
        """Block until one call is allowed; return the seconds waited."""
        ...


class NoLimit:
    """A limiter that never waits (development, outbox, tests)."""

    def acquire(self, timeout: float | None = None) -> float:
        """Always allowed immediately."""
        return 0.0


# Virtual-scheduling token bucket. State: tokens (may go negative = reservations already
# handed out) and the Redis server time they were computed at. A caller that finds a token
# takes it and waits 0; otherwise it reserves the next token (tokens - 1) and is told how
# long until that token accrues. Reservations beyond max_wait are refused without side
# effects so a caller that would time out does not steal a slot from the others.
# Using Redis TIME keeps all workers on one clock.
_RESERVE_SCRIPT = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local max_wait = tonumber(ARGV[3])
local ttl_ms = tonumber(ARGV[4])
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) + tonumber(now_parts[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1])
local ts = tonumber(state[2])
if tokens == nil or ts == nil then
  tokens = burst
  ts = now
end
if now > ts then
  tokens = math.min(burst, tokens + (now - ts) * rate)
  ts = now
end
local wait = 0
if tokens < 1 then
  wait = (1 - tokens) / rate
end
if max_wait >= 0 and wait > max_wait then
  return {0, tostring(wait)}
end
tokens = tokens - 1
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(ts))
redis.call('PEXPIRE', KEYS[1], ttl_ms + math.ceil(wait * 1000))
return {1, tostring(wait)}
"""


class RedisTokenBucket:
    """Token bucket in Redis: ``rate_per_second`` sustained, up to ``burst`` at once."""

    def __init__(
        self,
        redis_url: str,
        key: str,
        rate_per_second: float,
        burst: int,
        *,
        sleep: Sleep = time.sleep,
        client: redis.Redis | None = None,
    ) -> None:
        """``key`` names the bucket; every worker using the same key shares the limit."""
        if rate_per_second <= 0:
            raise ValueError("rate_per_second must be positive")
        if burst < 1:
            raise ValueError("burst must be at least 1")
        self.key = key
        self.rate_per_second = rate_per_second
        self.burst = burst
        self._sleep = sleep
        self._redis = client or redis.Redis.from_url(redis_url)
        self._reserve = self._redis.register_script(_RESERVE_SCRIPT)
        refill_seconds = burst / rate_per_second
        self._idle_ttl_ms = max(1000, math.ceil(refill_seconds * 2000))

    def reserve(self, max_wait: float | None = None) -> float:
        """Atomically take the next slot and return how long until it is due (no sleeping).

        Raises :class:`RateLimitTimeoutError` (taking nothing) if that is beyond ``max_wait``.
        """
        granted, wait = self._reserve(
            keys=[self.key],
            args=[
                repr(self.rate_per_second),
                self.burst,
                -1 if max_wait is None else repr(max_wait),
                self._idle_ttl_ms,
            ],
        )
        wait_seconds = float(wait)
        if not int(granted):
            raise RateLimitTimeoutError(wait_seconds)
        return wait_seconds

    def acquire(self, timeout: float | None = None) -> float:
        """Wait for a slot (up to ``timeout`` seconds) and return the seconds waited."""
        wait = self.reserve(timeout)
        if wait > 0:
            self._sleep(wait)
        return wait
