"""Fixtures for two-way messaging: a migrated SQLite store, an in-memory EHR, a recording
SMS adapter, the API under TestClient, and a signer that signs like Twilio."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from channels.twilio_signature import compute_signature
from fhir_bridge import tasks
from fhir_bridge.api.app import create_app
from fhir_bridge.runtime import Runtime
from fhir_bridge.settings import load_settings
from fhir_bridge.store.db import transaction
from fhir_bridge.store.models import PlannedMessage
from tests.inbound.doubles import InMemoryEhr, RecordingSms
from tests.support.databases import sqlite_database

AUTH_TOKEN = "5d1c0e7b9a2f4c6e8b0d2f4a6c8e0b1d"
PUBLIC_BASE = "https://bridge.riverside.example.org"
PATIENT_PHONE = "+16175550123"
PATIENT_REF = "Patient/eM5CWtq15N0WJeuCet5bJlQ3"
APPOINTMENT_ID = "eWLhfjXHp4RUczv2ny7HWkQ3"
NOW = datetime(2026, 12, 1, 14, 0, tzinfo=UTC)


@dataclass
class TwoWay:
    """Everything a two-way messaging test touches."""

    runtime: Runtime
    client: TestClient
    ehr: InMemoryEhr
    sms: RecordingSms
    enqueued: list[tuple[str, tuple[Any, ...]]]

    def post_signed(self, path: str, form: dict[str, str], *, token: str = AUTH_TOKEN) -> Any:
        signature = compute_signature(token, PUBLIC_BASE + path, form)
        return self.client.post(path, data=form, headers={"X-Twilio-Signature": signature})

    def inbound(self, body: str, *, sid: str, sender: str = PATIENT_PHONE) -> Any:
        form = {
            "ToCountry": "US",
            "SmsMessageSid": sid,
            "NumMedia": "0",
            "SmsSid": sid,
            "SmsStatus": "received",
            "Body": body,
            "To": "+16175550100",
            "NumSegments": "1",
            "MessageSid": sid,
            "AccountSid": "AC3f1b2c4d5e6f708192a3b4c5d6e7f801",
            "From": sender,
            "ApiVersion": "2010-04-01",
        }
        return self.post_signed("/twilio/inbound", form)

    def status(self, message_id: str, sid: str, status: str, error_code: str | None = None) -> Any:
        form = {
            "AccountSid": "AC3f1b2c4d5e6f708192a3b4c5d6e7f801",
            "ApiVersion": "2010-04-01",
            "From": "+16175550100",
            "MessageSid": sid,
            "MessageStatus": status,
            "SmsSid": sid,
            "SmsStatus": status,
            "To": PATIENT_PHONE,
        }
        if error_code:
            form["ErrorCode"] = error_code
        return self.post_signed(f"/twilio/status?message_id={message_id}", form)


@pytest.fixture
def two_way(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TwoWay]:
    with sqlite_database(tmp_path) as url:
        settings = load_settings(
            database_url=url,
            public_base_url=PUBLIC_BASE,
            sms_provider="outbox",
            outbox_dir=tmp_path / "outbox",
            twilio_auth_token=AUTH_TOKEN,
            ehr_base_url="http://127.0.0.1:9/fhir",
            clinic_reference="Organization/riverside-health",
            relay_interval_seconds=1.0,
        )
        ehr, sms = InMemoryEhr(), RecordingSms()
        runtime = Runtime(settings=settings, clock=lambda: NOW)
        runtime._cache.update({"ehr": ehr, "adapters": {"sms": sms}})
        enqueued: list[tuple[str, tuple[Any, ...]]] = []

        def record(task: str, *args: Any) -> bool:
            enqueued.append((task, args))
            return True

        monkeypatch.setattr(tasks, "try_enqueue", record)
        with TestClient(create_app(runtime)) as client:
            yield TwoWay(runtime, client, ehr, sms, enqueued)
        runtime.engine.dispose()


def appointment(participant_status: str = "needs-action") -> dict[str, Any]:
    """An Epic-style booked follow-up Appointment awaiting the patient's confirmation."""
    return {
        "resourceType": "Appointment",
        "id": APPOINTMENT_ID,
        "status": "booked",
        "serviceType": [
            {
                "coding": [
                    {
                        "system": "http://snomed.info/sct",
                        "code": "394814009",
                        "display": "General practice",
                    }
                ]
            }
        ],
        "appointmentType": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/v2-0276",
                    "code": "FOLLOWUP",
                    "display": "A follow up visit from a previous appointment",
                }
            ]
        },
        "start": "2026-12-03T09:30:00-05:00",
        "end": "2026-12-03T09:50:00-05:00",
        "minutesDuration": 20,
        "participant": [
            {
                "actor": {"reference": PATIENT_REF},
                "required": "required",
                "status": participant_status,
            },
            {
                "actor": {"reference": "Practitioner/eRztxMVTTvuHpXB0P0A8lQ3"},
                "required": "required",
                "status": "accepted",
            },
        ],
    }


def reminder_communication(communication_id: str = "comm-5551") -> dict[str, Any]:
    """The Communication our write-back created for the reminder (status in-progress)."""
    return {
        "resourceType": "Communication",
        "id": communication_id,
        "identifier": [{"system": "urn:fhir-bridge:message-id", "value": "msg-1"}],
        "status": "in-progress",
        "subject": {"reference": PATIENT_REF},
        "about": [{"reference": f"Appointment/{APPOINTMENT_ID}"}],
        "recipient": [{"reference": PATIENT_REF}],
        "medium": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationMode",
                        "code": "SMSWRIT",
                    }
                ]
            }
        ],
        "payload": [{"contentString": "Reminder: visit Thu Dec 3 9:30 AM. Reply C to confirm."}],
    }


def seed_reminder(
    runtime: Runtime,
    *,
    message_id: str = "msg-1",
    sid: str | None = "SMa1b2c3d4e5f60718293a4b5c6d7e8f90",
    status: str = "sent",
    communication_id: str | None = "comm-5551",
    sent_ago: timedelta = timedelta(hours=2),
    language: str = "en",
    text: str = "Reminder: visit Thu Dec 3 9:30 AM. Reply C to confirm.",
) -> None:
    """A reminder SMS already sent to the patient (as the delivery path leaves it)."""
    with transaction(runtime.sessions) as session:
        session.add(
            PlannedMessage(
                id=message_id,
                key=f"appointment-reminder|Appointment/{APPOINTMENT_ID}|{message_id}",
                rule="appointment-reminder",
                purpose="appointment-reminder",
                patient_ref=PATIENT_REF,
                about=[f"Appointment/{APPOINTMENT_ID}"],
                send_at=NOW - sent_ago,
                status=status,
                template="appointment_reminder",
                language=language,
                variables={},
                trace={},
                channel="sms",
                address=PATIENT_PHONE,
                text=text,
                provider="twilio",
                provider_message_id=sid,
                delivery_status="queued",
                sent_at=NOW - sent_ago if status == "sent" else None,
                communication_status="written" if communication_id else "pending",
                communication_id=communication_id,
            )
        )
