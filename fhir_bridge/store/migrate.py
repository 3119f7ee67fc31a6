"""Schema migrations (Alembic), callable from the CLI and tests."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", "fhir_bridge:migrations")
    config.set_main_option("sqlalchemy.url", database_url)
    return config


def upgrade(database_url: str) -> None:
    """Bring the database to the newest schema (idempotent)."""
    command.upgrade(alembic_config(database_url), "head")


def schema_problem(database_url: str) -> str | None:
    """Why commands cannot use this database yet (missing, unreachable, not migrated), or None.

    Never creates anything: SQLite makes a file on connect, so a missing file is reported
    before connecting. Every other URL is asked for its Alembic revision.
    """
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError

    from fhir_bridge.store.db import make_engine

    url = make_url(database_url)
    where = url.render_as_string(hide_password=True)
    fix = "run `fhir-bridge migrate` (or `fhir-bridge run`)"
    if url.get_backend_name() == "sqlite":
        path = url.database or ""
        if path in ("", ":memory:"):
            return None
        where = path
        if not Path(path).is_file():
            return f"no database at {path} — {fix}"
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            current = MigrationContext.configure(connection).get_current_revision()
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or type(exc).__name__).splitlines()[0]
        return f"cannot open the database at {where} ({reason}): check FHIR_BRIDGE_DATABASE_URL"
    finally:
        engine.dispose()
    head = ScriptDirectory.from_config(alembic_config(database_url)).get_current_head()
    if current is None:
        return f"the database at {where} is not migrated — {fix}"
    if current != head:
        return f"the database at {where} is at schema {current}, not {head} — {fix}"
    return None
