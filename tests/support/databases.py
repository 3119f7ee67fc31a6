"""Throwaway databases for tests: a fresh SQLite file or a fresh PostgreSQL database.

Every test that touches a database gets its own, migrated with Alembic, so no
test sees another's rows. PostgreSQL databases are cloned from a migrated
template, which keeps that cheap.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg

from fhir_bridge.store.migrate import upgrade

PG_ADMIN_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
PG_URL = "postgresql://postgres@127.0.0.1:5432/{name}"
_TEMPLATE = f"fhir_bridge_template_{uuid.uuid4().hex[:8]}"
_template_ready = False


def _admin(sql: str) -> None:
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(sql)  # type: ignore[arg-type,unused-ignore]


def _ensure_template() -> None:
    global _template_ready
    if not _template_ready:
        _admin(f'CREATE DATABASE "{_TEMPLATE}"')
        upgrade(PG_URL.format(name=_TEMPLATE))
        _template_ready = True


def drop_template() -> None:
    if _template_ready:
        _admin(f'DROP DATABASE IF EXISTS "{_TEMPLATE}" WITH (FORCE)')


@contextmanager
def postgres_database() -> Iterator[str]:
    """A migrated PostgreSQL database of its own; dropped afterwards."""
    _ensure_template()
    name = f"fhir_bridge_test_{uuid.uuid4().hex[:12]}"
    _admin(f'CREATE DATABASE "{name}" TEMPLATE "{_TEMPLATE}"')
    try:
        yield PG_URL.format(name=name)
    finally:
        _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def sqlite_database(directory: Path) -> Iterator[str]:
    """A migrated SQLite file of its own."""
    url = f"sqlite:///{directory / 'fhir-bridge.db'}"
    upgrade(url)
    yield url
