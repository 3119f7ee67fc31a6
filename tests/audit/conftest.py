"""Fixtures for AuditEvents: the staff panel's (one EHR for the run, an app per test) and a
runtime on a fresh database whose clock the test moves."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from fhir_bridge.runtime import Runtime
from fhir_bridge.sandbox.process import DEV_TOKEN
from fhir_bridge.settings import load_settings
from tests.inbound.conftest import two_way  # noqa: F401
from tests.smart_app.conftest import NOW, ehr, ehr_server, panel  # noqa: F401
from tests.support.databases import sqlite_database

BRIDGE_URL = "https://bridge.lakeside-fp.org"
SECRET = "test-notification-secret-0123456789-Wq7ZkP2xR9mVt4LsN8cYb3HjG6dFa5Ue"


@dataclass
class Clock:
    now: datetime = NOW

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def database(tmp_path: Path) -> Iterator[str]:
    with sqlite_database(tmp_path) as url:
        yield url


@pytest.fixture
def make_runtime(database: str, tmp_path: Path, clock: Clock) -> Iterator[Any]:
    """Runtimes on the test's database; the EHR at ``ehr_base_url``, tried once per push."""
    made: list[Runtime] = []

    def make(ehr_base_url: str, **overrides: Any) -> Runtime:
        settings: dict[str, Any] = {
            "database_url": database,
            "data_dir": tmp_path,
            "notification_secret": SECRET,
            "ehr_base_url": ehr_base_url,
            "ehr_auth": "static",
            "ehr_static_token": DEV_TOKEN,
            "ehr_max_attempts": 1,
            "ehr_timeout_seconds": 3,
            "public_base_url": BRIDGE_URL,
            "relay_interval_seconds": 5,
            "log_level": "WARNING",
        }
        settings.update(overrides)
        runtime = Runtime(settings=load_settings(**settings), clock=clock)
        made.append(runtime)
        return runtime

    yield make
    for runtime in made:
        if "ehr" in runtime._cache:
            runtime.ehr.close()
        runtime.engine.dispose()
