"""Fixtures for channel tests: local fake Twilio, webhook sink, Redis DB 5 with unique keys."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import redis

from tests.channels.webhook_sink import WebhookSink
from tests.support.fake_twilio import FakeTwilio

TEST_REDIS_URL = "redis://127.0.0.1:6379/5"


@pytest.fixture
def fake_twilio() -> Iterator[FakeTwilio]:
    with FakeTwilio() as server:
        yield server


@pytest.fixture
def webhook_sink() -> Iterator[WebhookSink]:
    with WebhookSink() as sink:
        yield sink


@pytest.fixture
def redis_url() -> str:
    return TEST_REDIS_URL


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A key prefix unique to this test; every key under it is deleted afterwards."""
    prefix = f"test-channels:{uuid.uuid4().hex}:"
    yield prefix
    client = redis.Redis.from_url(TEST_REDIS_URL)
    keys = list(client.scan_iter(match=prefix + "*"))
    if keys:
        client.delete(*keys)
    client.close()


class RecordingSleep:
    """Injectable sleep that records requested delays instead of waiting."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


@pytest.fixture
def recording_sleep() -> RecordingSleep:
    return RecordingSleep()
