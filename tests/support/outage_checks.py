"""What every fault test checks at the end: nothing left stuck in the database, no role gone."""

from __future__ import annotations

import subprocess

import psycopg

STUCK_QUERIES = {
    "inbox notifications not processed": (
        "SELECT count(*) FROM inbox_notification WHERE status NOT IN ('done', 'failed')"
    ),
    "messages queued, sending or unknown": (
        "SELECT count(*) FROM planned_message WHERE status IN ('queued', 'sending', 'unknown')"
    ),
    "messages sent without their Communication written": (
        "SELECT count(*) FROM planned_message"
        " WHERE status = 'sent' AND communication_status <> 'written'"
    ),
    "Communication updates not done": (
        "SELECT count(*) FROM communication_sync WHERE status IN ('pending', 'processing')"
    ),
}


def stuck_work(database_url: str) -> dict[str, int]:
    """Counts of unfinished work by kind; only the non-zero ones (empty means nothing stuck)."""
    with psycopg.connect(database_url, connect_timeout=5) as conn:
        counts = {
            what: int(conn.execute(sql).fetchone()[0])  # type: ignore[index,arg-type,unused-ignore]
            for what, sql in STUCK_QUERIES.items()
        }
    return {what: count for what, count in counts.items() if count}


def exited_roles(roles: dict[str, subprocess.Popen[bytes]]) -> dict[str, int]:
    """The roles whose process has exited, with their exit status."""
    return {name: code for name, process in roles.items() if (code := process.poll()) is not None}
