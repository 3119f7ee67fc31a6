"""Fixtures for the outcome measures: a session factory on a fresh database."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy.orm import Session, sessionmaker

from fhir_bridge.store.db import make_engine, make_session_factory


@pytest.fixture
def factory(database_url: str) -> Iterator[sessionmaker[Session]]:
    """Sessions on the test's own database (SQLite and PostgreSQL)."""
    engine = make_engine(database_url)
    try:
        yield make_session_factory(engine)
    finally:
        engine.dispose()


from tests.smart_app.conftest import ehr, ehr_server, panel  # noqa: E402, F401
