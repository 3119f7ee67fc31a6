"""Fault: PostgreSQL is stopped for 30 s while the EHR keeps delivering notifications.

While the database is unreachable our API answers every notification 503 with
``Retry-After`` (never 500: an EHR counts other 5xx against the Subscription), and no role
exits. The EHR gives up on the Subscription after a few failed deliveries; once the
database is back the periodic check re-requests it and searches the gap, so every
reminder is sent exactly once, with one Communication each, and nothing is left stuck.
"""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from fhir_bridge.ingest.auth import subscription_token
from tests.e2e.fixtures import appointment, patient
from tests.e2e.harness import NOTIFICATION_SECRET, Stack, running_stack, wait_for
from tests.pipeline import samples
from tests.support.outage_checks import exited_roles, stuck_work
from tests.support.private_postgres import private_postgres

pytestmark = pytest.mark.integration

OUTAGE_SECONDS = 30
LEAD = timedelta(hours=1)


def _book(stack: Stack, n: int, due_in: timedelta) -> tuple[str, str]:
    email = f"pg.patient{n}@example.net"
    created = stack.ehr.create(patient(f"MRN-52{n:02d}", "Lucia", "Fernandez", email))
    stack.ehr.create(appointment(created["id"], datetime.now(UTC) + LEAD + due_in))
    return str(created["id"]), email


def _completed(stack: Stack, patient_id: str) -> list[dict[str, Any]]:
    return [c for c in stack.communications(patient_id) if c["status"] == "completed"]


def _replay_heartbeat(stack: Stack) -> httpx.Response:
    """A correctly authenticated heartbeat, as the EHR would send it, to our API."""
    bundle = stack.ehr.search("Subscription", _count="100")
    endpoint = bundle["entry"][0]["resource"]["channel"]["endpoint"]
    subscription_id = endpoint.rstrip("/").rsplit("/", 1)[-1]
    body = samples.notification_bundle(
        samples.r4_status("heartbeat", subscription_id=subscription_id)
    )
    return httpx.post(
        endpoint,
        json=body,
        headers={
            "Authorization": f"Bearer {subscription_token(NOTIFICATION_SECRET, subscription_id)}",
            "Content-Type": "application/fhir+json",
        },
        timeout=30,
    )


def test_a_postgres_outage_while_the_ehr_keeps_notifying_loses_and_doubles_nothing(
    tmp_path: Path,
) -> None:
    with (
        private_postgres() as database,
        running_stack(
            tmp_path,
            offsets=["PT1H"],
            extra_env={"FHIR_BRIDGE_DATABASE_URL": database.url},
        ) as stack,
    ):
        assert stack.bridge.api is not None
        roles = {
            "api": stack.bridge.api,
            "worker": stack.bridge.start_worker(beat=False),
            "scheduler": stack.bridge.start_scheduler(),
        }
        pids = {name: process.pid for name, process in roles.items()}

        booked = [_book(stack, 0, timedelta(seconds=4))]
        wait_for(
            lambda: _completed(stack, booked[0][0]),
            timeout=45,
            what="the reminder booked before the outage",
            logs=stack.bridge.logs,
        )

        database.stop()
        outage_from = len(stack.ehr.deliveries())
        stopped_at = time.monotonic()
        booked += [_book(stack, n, timedelta(seconds=5)) for n in (1, 2)]
        time.sleep(3)
        replayed = _replay_heartbeat(stack)
        booked.append(_book(stack, 3, timedelta(seconds=5)))
        time.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - stopped_at)))
        during = stack.ehr.deliveries()[outage_from:]
        database.start()

        assert replayed.status_code == 503, replayed.text
        assert int(replayed.headers["Retry-After"]) > 0
        answered = [d["status_code"] for d in during if d["status_code"] is not None]
        assert answered, "the EHR delivered nothing during the outage"
        # A notification already past its commit when the database went down may still get
        # its 200; everything else is a 503 the EHR can retry, never a 500.
        assert 503 in answered and set(answered) <= {200, 503}, Counter(answered)
        assert any(d["type"] == "event-notification" and d["status_code"] == 503 for d in during)
        assert not exited_roles(roles), "a role exited in the outage\n" + stack.bridge.logs()

        booked.append(_book(stack, 4, timedelta(seconds=4)))
        wait_for(
            lambda: all(_completed(stack, patient_id) for patient_id, _ in booked),
            timeout=60,
            what="a completed Communication for every reminder after the outage",
            logs=stack.bridge.logs,
        )
        leftovers = wait_for(
            lambda: not stuck_work(database.url) or None,
            timeout=20,
            what="no unfinished work in the database",
            logs=lambda: f"{stuck_work(database.url)}\n{stack.bridge.logs()}",
        )
        assert leftovers

        assert not exited_roles(roles), "a role exited\n" + stack.bridge.logs()
        assert {name: process.pid for name, process in roles.items()} == pids
        per_address = Counter(str(m["To"]) for m in stack.smtp.messages)
        assert per_address == Counter({email: 1 for _, email in booked})
        for patient_id, _ in booked:
            assert len(stack.communications(patient_id)) == 1
