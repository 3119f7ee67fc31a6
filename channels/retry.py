"""Bounded exponential backoff with full jitter for provider calls.

Retrying inside an adapter absorbs the short blips (a 429 burst, a 503 during a provider
deploy) without bouncing the message back through the pipeline's slower retry queue. The
attempts are bounded so a real outage still surfaces quickly as a TransientChannelError.
Randomness and sleeping are injectable so tests are deterministic and instant.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

Sleep = Callable[[float], None]


@dataclass(frozen=True)
class RetryPolicy:
    """How many times to try and how long to wait between tries.

    Delay before retry ``n`` (1-based) is uniform in ``[0, min(max_delay, base * 2**(n-1))]``
    ("full jitter"), so many workers hitting the same 429 do not retry in lockstep. A
    provider-supplied ``Retry-After`` raises the floor of the delay, capped at ``max_delay``.
    """

    max_attempts: int = 4
    base_delay: float = 0.5
    max_delay: float = 8.0
    sleep: Sleep = field(default=time.sleep, compare=False)
    jitter: Callable[[float, float], float] = field(default=random.uniform, compare=False)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.base_delay < 0 or self.max_delay < 0:
            raise ValueError("delays must not be negative")

    def delay_before_retry(self, retry_number: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry ``retry_number`` (1 = the first retry)."""
        ceiling = min(self.max_delay, self.base_delay * (2 ** (retry_number - 1)))
        delay = self.jitter(0.0, ceiling)
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.max_delay))
        return delay


NO_RETRY = RetryPolicy(max_attempts=1)
