"""Round-trips per event stay within a budget: SQL statements and EHR requests for one
Appointment notification, from the API through planning and delivery to the Communication
written back, on SQLite and PostgreSQL.

The budgets are today's counts. When a change adds a statement or a request, this fails
with the new count; lower the budget when a change saves some (issue #10, must-have 5).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, func, select

from fhir_bridge import jobs
from fhir_bridge.api import notifications
from fhir_bridge.api.app import create_app
from fhir_bridge.ingest.auth import subscription_token
from fhir_bridge.runtime import Runtime
from fhir_bridge.sandbox.process import EhrServer
from fhir_bridge.store.db import transaction
from fhir_bridge.store.models import InboxNotification, PlannedMessage
from tests.conftest import NOTIFICATION_SECRET
from tests.pipeline.conftest import add_subscription, make_runtime
from tests.pipeline.ehr_flow import interactions
from tests.pipeline.samples import appointment, notification_bundle, patient, r4_status
from tests.support.databases import postgres_database, sqlite_database

pytestmark = pytest.mark.integration

SUBSCRIPTION_ID = "3f1d2c4b-5a69-4e7f-8a1b-2c3d4e5f6a7b"
TOKEN = subscription_token(NOTIFICATION_SECRET, SUBSCRIPTION_ID)
# Statements per phase and in all, and EHR round-trips in all: today's counts.
SQL_BUDGET = {
    "sqlite": {"ingest": 2, "plan": 17, "deliver": 16, "write back": 15, "total": 50},
    "postgresql": {"ingest": 2, "plan": 17, "deliver": 16, "write back": 8, "total": 43},
}
# Planning reads Appointment, Patient and the Practitioner it names (3); delivery re-reads
# Appointment, Patient and Consents in one batch and the Practitioner (2, was 4 before the
# batch); write-back creates the Communication (1).
EHR_BUDGET = 6


@dataclass
class Counter:
    """SQL statements seen on one engine, by the phase that was running."""

    phase: str = "setup"
    statements: dict[str, int] = field(default_factory=dict)

    def count(self, *_args: Any) -> None:
        self.statements[self.phase] = self.statements.get(self.phase, 0) + 1


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    if request.param == "sqlite":
        with sqlite_database(tmp_path) as url:
            yield "sqlite", url
    else:
        with postgres_database() as url:
            yield "postgresql", url


def _new(resource: dict[str, Any]) -> dict[str, Any]:
    fresh = copy.deepcopy(resource)
    fresh.pop("id", None)
    fresh.pop("meta", None)
    return fresh


def _instant(moment: datetime) -> str:
    return moment.replace(microsecond=0).isoformat().replace("+00:00", "Z")


def test_one_event_stays_within_its_statement_and_request_budget(
    backend: tuple[str, str],
    ehr: EhrServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    name, url = backend
    monkeypatch.setattr(notifications, "wake_worker", lambda _ids: True)
    rt: Runtime = make_runtime(url, tmp_path, ehr_base_url=ehr.base_url, ehr_max_attempts=2)
    add_subscription(rt, subscription_id=SUBSCRIPTION_ID)
    booked_patient = ehr.create(_new(patient()))
    start = datetime.now(UTC) + timedelta(days=10)
    booked = ehr.create(_new(appointment(booked_patient["id"], start=_instant(start))))
    body = notification_bundle(
        r4_status("event-notification", events=[(1, f"Appointment/{booked['id']}")])
    )
    assert rt.ehr.supports_batch()  # asked once per worker process, not per event
    counter = Counter()
    event.listen(rt.engine, "before_cursor_execute", counter.count)
    before = dict(interactions(ehr))
    try:
        with TestClient(create_app(rt)) as client:
            counter.phase = "ingest"
            response = client.post(
                f"/notifications/{SUBSCRIPTION_ID}",
                content=json.dumps(body),
                headers={
                    "Authorization": f"Bearer {TOKEN}",
                    "Content-Type": "application/fhir+json",
                },
            )
        assert response.status_code == 200
        counter.phase = "setup"
        with transaction(rt.sessions) as session:
            inbox_ids = list(session.scalars(select(InboxNotification.id)))
        counter.phase = "plan"
        assert [jobs.process_inbox(rt, inbox_id) for inbox_id in inbox_ids]
        counter.phase = "setup"
        with transaction(rt.sessions) as session:
            due = session.scalar(select(func.min(PlannedMessage.send_at)))
        assert due is not None
        rt.clock = lambda: due.replace(tzinfo=UTC) if due.tzinfo is None else due
        counter.phase = "deliver"
        claimed = jobs.claim_due_messages(rt)
        outcomes = [jobs.deliver_message(rt, message_id) for message_id in claimed]
        counter.phase = "write back"
        written = [jobs.write_back(rt, message_id) for message_id in claimed]
        counter.phase = "done"
    finally:
        event.remove(rt.engine, "before_cursor_execute", counter.count)
        rt.ehr.close()
        rt.engine.dispose()
    requests = {k: v - before.get(k, 0) for k, v in interactions(ehr).items() if v != before.get(k)}
    # Round-trips: a batch counts once, not once per entry.
    ehr_requests = sum(n for kind, n in requests.items() if not kind.endswith(".batch-entry"))

    assert outcomes == ["sent"] and written == ["written"]
    counted = {phase: counter.statements.get(phase, 0) for phase in SQL_BUDGET[name]}
    counted["total"] = sum(counted.values())
    budget = SQL_BUDGET[name]
    assert all(counted[p] <= budget[p] for p in budget), (
        f"{name}: SQL statements per event {counted} exceed the budget {budget}"
    )
    assert ehr_requests <= EHR_BUDGET, (
        f"EHR requests per event: {ehr_requests} (budget {EHR_BUDGET})"
    )
    print(f"{name}: SQL statements {counted}, EHR requests {requests}")
