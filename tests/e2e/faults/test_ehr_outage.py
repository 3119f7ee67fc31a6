"""Fault: the EHR answers 503 for a while, then is unreachable for 60 s, while reminders fall due.

Delivery re-reads the appointment from the EHR before it sends, and writes a Communication
back after; both fail in the outage. The reminder may wait until the EHR is back (it must
not be sent on stale data), but it is sent exactly once, with exactly one Communication,
no role exits and nothing is left stuck. A notification that arrives in the outage (the
EHR's own delivery still works; its API does not) is processed once the EHR answers again.

The EHR sits behind a proxy that answers 503 or refuses connections, so the fake EHR keeps
its data through the outage.
"""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from fhir_bridge.sandbox.process import EhrServer
from tests.e2e import harness
from tests.e2e.fixtures import appointment, patient
from tests.e2e.harness import Stack, running_stack, wait_for
from tests.support.outage_checks import exited_roles, stuck_work
from tests.support.outage_proxy import OutageProxy, outage_proxy

pytestmark = pytest.mark.integration

UNAVAILABLE_SECONDS = 10
UNREACHABLE_SECONDS = 60
LEAD = timedelta(hours=1)


def _book(stack: Stack, n: int, due_in: timedelta) -> tuple[str, str]:
    email = f"ehr.patient{n}@example.net"
    created = stack.ehr.create(patient(f"MRN-53{n:02d}", "Mateo", "Alvarez", email))
    stack.ehr.create(appointment(created["id"], datetime.now(UTC) + LEAD + due_in))
    return str(created["id"]), email


def _completed(stack: Stack, patient_id: str) -> list[dict[str, Any]]:
    return [c for c in stack.communications(patient_id) if c["status"] == "completed"]


def _planned(database_url: str) -> int:
    with psycopg.connect(database_url, connect_timeout=5) as conn:
        row = conn.execute("SELECT count(*) FROM planned_message").fetchone()
    return int(row[0]) if row else 0


def _behind(proxy: OutageProxy) -> type[EhrServer]:
    class ProxiedEhr(EhrServer):
        def start(self) -> None:
            super().start()
            proxy.upstream = self.origin

    return ProxiedEhr


def test_an_ehr_503_then_unreachable_for_60s_delays_reminders_but_never_loses_or_doubles_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with outage_proxy() as proxy:
        monkeypatch.setattr(harness, "EhrServer", _behind(proxy))
        with running_stack(
            tmp_path,
            offsets=["PT1H"],
            extra_env={"FHIR_BRIDGE_EHR_BASE_URL": f"{proxy.origin}/fhir"},
        ) as stack:
            assert stack.bridge.api is not None
            roles = {
                "api": stack.bridge.api,
                "worker": stack.bridge.start_worker(beat=False),
                "scheduler": stack.bridge.start_scheduler(),
            }
            pids = {name: process.pid for name, process in roles.items()}
            due_in = [UNAVAILABLE_SECONDS + 5, UNAVAILABLE_SECONDS + 25]
            booked = [_book(stack, n, timedelta(seconds=due)) for n, due in enumerate(due_in)]
            # When each reminder falls due (a slow machine may take longer than the first
            # one's margin to plan both: that one may then go out before the outage).
            due_at = [time.monotonic() + due for due in due_in]
            wait_for(
                lambda: _planned(stack.database_url) == 2,
                timeout=30,
                what="both reminders planned before the outage",
                logs=stack.bridge.logs,
            )

            proxy.unavailable()
            outage_from = time.monotonic()
            time.sleep(UNAVAILABLE_SECONDS)
            proxy.down()
            booked.append(_book(stack, 2, timedelta(seconds=UNREACHABLE_SECONDS + 8)))
            due_at.append(time.monotonic() + UNREACHABLE_SECONDS + 8)
            time.sleep(UNAVAILABLE_SECONDS + UNREACHABLE_SECONDS - (time.monotonic() - outage_from))
            assert not exited_roles(roles), "a role exited in the outage\n" + stack.bridge.logs()
            assert proxy.answered[503] > 0, "nothing asked the EHR while it answered 503"
            due_in_outage = [
                patient_id
                for (patient_id, _), due in zip(booked, due_at, strict=True)
                if due > outage_from
            ]
            assert len(due_in_outage) >= 2
            assert not any(_completed(stack, patient_id) for patient_id in due_in_outage)
            proxy.up()

            wait_for(
                lambda: all(_completed(stack, patient_id) for patient_id, _ in booked),
                timeout=60,
                what="a completed Communication for every reminder after the outage",
                logs=stack.bridge.logs,
            )
            assert wait_for(
                lambda: not stuck_work(stack.database_url) or None,
                timeout=20,
                what="no unfinished work in the database",
                logs=lambda: f"{stuck_work(stack.database_url)}\n{stack.bridge.logs()}",
            )

            assert not exited_roles(roles), "a role exited\n" + stack.bridge.logs()
            assert {name: process.pid for name, process in roles.items()} == pids
            per_address = Counter(str(m["To"]) for m in stack.smtp.messages)
            assert per_address == Counter({email: 1 for _, email in booked})
            for patient_id, _ in booked:
                assert len(stack.communications(patient_id)) == 1
