"""A two-way messaging world wired to the fake EHR process (not the in-memory double), for
the opt-out specifications: STOP/START supersession and the email unsubscribe link."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from channels.twilio_signature import compute_signature
from fhir_bridge import tasks
from fhir_bridge.api.app import create_app
from fhir_bridge.inbound.jobs import process_inbound_message
from fhir_bridge.runtime import Runtime
from fhir_bridge.sandbox.process import DEV_TOKEN, EhrServer
from fhir_bridge.settings import load_settings
from fhir_bridge.store.db import transaction
from fhir_bridge.store.models import LedgerEntry
from tests.inbound.conftest import AUTH_TOKEN, NOW, PATIENT_PHONE, PATIENT_REF, PUBLIC_BASE
from tests.inbound.doubles import RecordingSms
from tests.support.databases import sqlite_database

NOTIFICATION_SECRET = "riverside-notification-secret-0c9f3b71d2-Wq7ZkP2xR9mVt4LsN8cYb3HjG6dFa5Ue"
INBOUND_SYSTEM = "urn:fhir-bridge:inbound-sms"


@dataclass
class Clock:
    """A clock the test moves forward (a patient's STOP and START are minutes apart)."""

    now: datetime = NOW

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now = self.now + timedelta(**delta)


@dataclass
class OptOutWorld:
    runtime: Runtime
    client: TestClient
    ehr: EhrServer
    clock: Clock
    enqueued: list[tuple[str, tuple[Any, ...]]] = field(default_factory=list)

    def text(self, body: str, *, sid: str, sender: str = PATIENT_PHONE) -> str:
        """The patient's SMS arrives through the signed webhook and is processed."""
        form = {
            "MessageSid": sid,
            "SmsSid": sid,
            "AccountSid": "AC3f1b2c4d5e6f708192a3b4c5d6e7f801",
            "From": sender,
            "To": "+16175550100",
            "Body": body,
            "NumSegments": "1",
            "ApiVersion": "2010-04-01",
        }
        signature = compute_signature(AUTH_TOKEN, PUBLIC_BASE + "/twilio/inbound", form)
        response = self.client.post(
            "/twilio/inbound", data=form, headers={"X-Twilio-Signature": signature}
        )
        assert response.status_code == 200
        return process_inbound_message(self.runtime, self.enqueued[-1][1][0])

    def consents(self, patient_ref: str = PATIENT_REF) -> list[dict[str, Any]]:
        bundle = self.ehr.search("Consent", patient=patient_ref, _count="100")
        return [entry["resource"] for entry in bundle.get("entry") or []]

    def ours(self, channel: str) -> list[dict[str, Any]]:
        """The Consents we wrote (our identifier system) about ``channel``."""
        return [
            consent
            for consent in self.consents()
            if any(i.get("system") == INBOUND_SYSTEM for i in consent.get("identifier") or [])
            and consent["provision"]["action"][0]["coding"][0]["code"] == channel
        ]

    def ledger(self) -> list[tuple[str, str | None, str, str]]:
        with transaction(self.runtime.sessions) as session:
            return [
                (e.channel, e.address, e.action, e.source)
                for e in session.scalars(select(LedgerEntry).order_by(LedgerEntry.id))
            ]


def open_world(
    ehr: EhrServer, tmp_path: Path, monkeypatch: Any, **overrides: Any
) -> Iterator[OptOutWorld]:
    with sqlite_database(tmp_path) as url:
        settings = load_settings(
            database_url=url,
            public_base_url=PUBLIC_BASE,
            sms_provider="outbox",
            outbox_dir=tmp_path / "outbox",
            twilio_auth_token=AUTH_TOKEN,
            ehr_base_url=ehr.base_url,
            ehr_auth="static",
            ehr_static_token=DEV_TOKEN,
            notification_secret=NOTIFICATION_SECRET,
            clinic_reference="Organization/riverside-health",
            **overrides,
        )
        clock = Clock()
        runtime = Runtime(settings=settings, clock=clock)
        runtime._cache["adapters"] = {"sms": RecordingSms()}
        world_enqueued: list[tuple[str, tuple[Any, ...]]] = []

        def record(task: str, *args: Any) -> bool:
            world_enqueued.append((task, args))
            return True

        monkeypatch.setattr(tasks, "try_enqueue", record)
        with TestClient(create_app(runtime)) as client:
            yield OptOutWorld(runtime, client, ehr, clock, world_enqueued)
        runtime.ehr.close()
        runtime.engine.dispose()
