"""Engine and session set-up for SQLite (embedded default) and PostgreSQL.

SQLite gets WAL and a generous busy timeout so the API, the worker and the
scheduler can share one file; PostgreSQL is used as-is.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from fhir_bridge.private_files import private_file

RowT = TypeVar("RowT")


def make_engine(database_url: str) -> Engine:
    """Create an engine with the pragmas and pool settings each backend needs."""
    if database_url.startswith("sqlite"):
        path = database_url.split("///", 1)[-1].split("?", 1)[0]
        if path and path != ":memory:" and not path.startswith("file:"):
            # PHI at rest: the file is 0600 in a 0700 folder before SQLite opens it (its
            # -wal and -shm files take the database file's mode).
            private_file(Path(path))
        engine = create_engine(
            database_url, connect_args={"check_same_thread": False, "timeout": 30}
        )

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        return engine
    if database_url.startswith("postgresql://"):
        database_url = "postgresql+psycopg://" + database_url[len("postgresql://") :]
    return create_engine(database_url, pool_pre_ping=True, pool_size=5, max_overflow=5)


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions never expire on commit: services read ids after committing."""
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One unit of work: commit once at the edge, roll back on any error."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def insert_once(session: Session, row: RowT) -> RowT | None:
    """Insert a row guarded by a unique key; ``None`` when it already exists (a duplicate).

    A savepoint keeps the surrounding transaction usable after the constraint fires.
    """
    savepoint = session.begin_nested()
    try:
        session.add(row)
        session.flush()
    except IntegrityError:
        savepoint.rollback()
        return None
    savepoint.commit()
    return row
