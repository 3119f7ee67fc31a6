"""Shared fixtures: real databases (SQLite and PostgreSQL), runtimes, the fake EHR."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.support.databases import drop_template, postgres_database, sqlite_database

NOTIFICATION_SECRET = "test-notification-secret-0123456789-Wq7ZkP2xR9mVt4LsN8cYb3HjG6dFa5Ue"


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    drop_template()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The store's tests run on both backends."""
    if request.param == "sqlite":
        with sqlite_database(tmp_path) as url:
            yield url
    else:
        with postgres_database() as url:
            yield url


@pytest.fixture
def postgres_url() -> Iterator[str]:
    with postgres_database() as url:
        yield url


@pytest.fixture
def fixed_now() -> datetime:
    return datetime(2026, 12, 1, 14, 0, tzinfo=UTC)
