"""Throughput and per-message latency of the Twilio SMS adapter against the local fake.

Figures printed:
* unpaced: messages/s and send() latency p50/p95 with no rate limit (adapter + HTTP + Redis
  journal overhead against a local server; a lower bound on what the adapter adds);
* limiter overhead: cost of one Redis token-bucket reservation (the Lua round trip) p50/p95;
* paced: achieved messages/s at the configured rate limit, and the pacing wait p50/p95.

The fake Twilio server runs in a thread of this process, so client and server share one
interpreter (GIL): treat the unpaced figures as conservative. Run from the repo root:
``.venv/bin/python benchmarks/bench_sms.py [--messages 200] [--rate 20] [--burst 1]``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from pathlib import Path

import redis

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from channels.base import OutboundMessage
from channels.ratelimit import NoLimit, RateLimiter, RedisTokenBucket
from channels.send_journal import RedisSendJournal
from channels.twilio_sms import TwilioSmsAdapter
from tests.support.fake_twilio import FakeTwilio

REDIS_URL = "redis://127.0.0.1:6379/5"


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def run_batch(
    fake: FakeTwilio, limiter: RateLimiter, prefix: str, count: int
) -> tuple[float, list[float]]:
    adapter = TwilioSmsAdapter(
        account_sid=fake.account_sid,
        auth_token=fake.auth_token,
        from_number="+16175550100",
        base_url=fake.base_url,
        rate_limiter=limiter,
        journal=RedisSendJournal(REDIS_URL, prefix=prefix, ttl_seconds=600),
    )
    latencies: list[float] = []
    started = time.perf_counter()
    for n in range(count):
        message = OutboundMessage(
            message_id=f"bench-{prefix}-{n}",
            channel="sms",
            to=f"+1617555{n % 10000:04d}",
            text=f"Benchmark reminder {n}: appointment Tue 2 Dec 09:30",
        )
        sent_at = time.perf_counter()
        adapter.send(message)
        latencies.append(time.perf_counter() - sent_at)
    elapsed = time.perf_counter() - started
    adapter.close()
    return count / elapsed, latencies


def limiter_overhead(prefix: str, samples: int) -> list[float]:
    bucket = RedisTokenBucket(REDIS_URL, prefix + "overhead", rate_per_second=1e6, burst=10**6)
    costs: list[float] = []
    for _ in range(samples):
        started = time.perf_counter()
        bucket.reserve()
        costs.append(time.perf_counter() - started)
    return costs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--rate", type=float, default=20.0, help="configured messages/second")
    parser.add_argument("--burst", type=int, default=1)
    args = parser.parse_args()
    prefix = f"bench-sms:{uuid.uuid4().hex}:"
    ms = 1000.0
    try:
        with FakeTwilio() as fake:
            run_batch(fake, NoLimit(), prefix + "warmup:", 10)
            rate, latencies = run_batch(fake, NoLimit(), prefix + "free:", args.messages)
            print(f"unpaced: {args.messages} messages, {rate:.1f} msg/s")
            print(
                f"unpaced send() latency: p50 {percentile(latencies, 0.5) * ms:.2f} ms, "
                f"p95 {percentile(latencies, 0.95) * ms:.2f} ms"
            )
            costs = limiter_overhead(prefix, 500)
            print(
                f"limiter reserve overhead: p50 {percentile(costs, 0.5) * ms:.3f} ms, "
                f"p95 {percentile(costs, 0.95) * ms:.3f} ms"
            )
            paced_count = max(args.burst + 1, min(args.messages, int(args.rate * 5)))
            bucket = RedisTokenBucket(
                REDIS_URL, prefix + "paced", rate_per_second=args.rate, burst=args.burst
            )
            paced_rate, paced_latencies = run_batch(fake, bucket, prefix + "paced:", paced_count)
            median_free = statistics.median(latencies)
            added = [latency - median_free for latency in paced_latencies]
            print(
                f"paced at {args.rate:g}/s burst {args.burst}: {paced_count} messages, "
                f"{paced_rate:.2f} msg/s achieved"
            )
            print(
                "paced added latency per message vs unpaced median: "
                f"p50 {percentile(added, 0.5) * ms:.1f} ms, "
                f"p95 {percentile(added, 0.95) * ms:.1f} ms"
            )
    finally:
        client = redis.Redis.from_url(REDIS_URL)
        keys = list(client.scan_iter(match=prefix + "*"))
        if keys:
            client.delete(*keys)
        client.close()


if __name__ == "__main__":
    main()
