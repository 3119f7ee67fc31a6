"""Per-campaign numbers (``fhir-bridge report --campaign ID``) on a history counted by hand.

A preventive-care campaign, "Diabetes: yearly eye exam", ran twice in November 2026:

* Mary: delivered Nov 2; replies STOP two days later; books an eye exam 70 days later.
* José (Spanish): delivered Nov 2 and again Nov 9; answers both; books an eye exam Dec 10.
* Grace: delivered Nov 2; STOP ten days later; books a follow-up visit and an eye exam she
  then cancels.
* Ahmed: sent Nov 2, the carrier reports it undelivered; his eye exam was booked in October.
* Lin: delivered Nov 2; books an eye exam in an EHR that leaves ``Appointment.created``
  out (last update Nov 20).
* Two patients withheld (no mobile number; opted out), one message we gave up on.

Mary also got an appointment reminder and a health tip of another campaign, and answered
both: neither counts here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert
from sqlalchemy.orm import Session, sessionmaker

from fhir_bridge.outcomes import campaigns as outcomes
from fhir_bridge.store.db import make_engine, make_session_factory, transaction
from fhir_bridge.store.models import Campaign, InboundMessage, PlannedMessage, ResourceState
from tests.support.databases import sqlite_database

EYE_EXAM = {
    "coding": [
        {
            "system": "http://snomed.info/sct",
            "code": "36228007",
            "display": "Ophthalmic examination and evaluation",
        }
    ],
    "text": "Diabetic eye exam",
}
FOLLOW_UP = {"coding": [{"system": "http://snomed.info/sct", "code": "390906007"}]}
CARE = ["http://snomed.info/sct|36228007"]
EYE_CAMPAIGN = "0b7c3c1e-5d1a-4f4e-9a57-8f0f3f0f2a11"
TIP_CAMPAIGN = "7d2e4b9a-1c3f-4e8d-b6a5-2f9e8d7c6b50"
MARY = ("eq081-VQEgP8drUUqCWzHfw3", "+16175550123")
JOSE = ("e63wRTbPfr1p8UW81d8Seiw3", "+16175550188")
GRACE = ("eK2m9PqR4sT6uV8wX0yZ1aB3", "+16175550142")
AHMED = ("eP3qR5sT7uV9wX1yZ3aB5cD7", "+16175550177")
LIN = ("eL1n9QwE3rT5yU7iO9pA1sD3", "+16175550166")


def at(month: int, day: int, hour: int = 15) -> datetime:
    return datetime(2026, month, day, hour, 0, tzinfo=UTC)


class Clinic:
    """Rows to write: campaigns, their messages, replies and appointments."""

    def __init__(self) -> None:
        self.rows: dict[Any, list[dict[str, Any]]] = {
            Campaign: [],
            PlannedMessage: [],
            InboundMessage: [],
            ResourceState: [],
        }

    def campaign(self, campaign_id: str, name: str, kind: str, audience: dict[str, Any]) -> None:
        self.rows[Campaign].append(
            {
                "id": campaign_id,
                "name": name,
                "kind": kind,
                "purpose": "health-tips" if kind == "health-tips" else "care-coordination",
                "audience": audience,
                "templates": ["tip-daily-walk"],
                "priority": "routine",
                "emergency": False,
                "cancels_appointments": False,
                "status": "running",
                "drafted_by": "Practitioner/pr-ana-ortiz",
                "approved_by": "Practitioner/pr-ben-cole",
                "runs": 2,
                "created_at": at(10, 30),
                "updated_at": at(11, 9),
            }
        )

    def message(
        self,
        who: tuple[str, str],
        *,
        campaign: str | None = EYE_CAMPAIGN,
        run: int = 1,
        on: datetime = at(11, 2),
        status: str = "sent",
        delivery: str | None = "delivered",
        reason: str | None = None,
    ) -> str:
        message_id = str(uuid.uuid4())
        sent = status == "sent"
        ref = f"Patient/{who[0]}"
        key = f"campaign|{campaign}|{run}|{ref}" if campaign else f"appointment|{message_id}"
        self.rows[PlannedMessage].append(
            {
                "id": message_id,
                "key": key,
                "rule": "campaign" if campaign else "appointment-reminder",
                "purpose": "care-coordination",
                "patient_ref": ref,
                "about": [],
                "send_at": on,
                "status": status,
                "template": "tip-daily-walk",
                "language": "en",
                "variables": {},
                "sensitive": False,
                "trace": {"rule": "campaign", "priority": "routine"},
                "attempts": 1 if status in ("sent", "failed") else 0,
                "channel": "sms" if status != "withheld" else None,
                "address": who[1] if status != "withheld" else None,
                "text": "Riverside Health: time for your yearly check." if sent else None,
                "provider": "twilio",
                "delivery_status": delivery if sent else None,
                "sent_at": on if sent else None,
                "reason": reason,
                "communication_status": "written",
                "created_at": on,
                "updated_at": on,
            }
        )
        return message_id

    def reply(
        self, who: tuple[str, str], text: str, intent: str, on: datetime, answers: str | None
    ) -> None:
        self.rows[InboundMessage].append(
            {
                "provider_message_id": f"SM{uuid.uuid4().hex}",
                "from_address": who[1],
                "to_address": "+16175550100",
                "body": text,
                "received_at": on,
                "status": "done",
                "processed_at": on,
                "patient_ref": f"Patient/{who[0]}",
                "in_reply_to": answers,
                "intent": intent,
                "steps_done": [],
            }
        )

    def appointment(
        self,
        who: tuple[str, str],
        service: dict[str, Any],
        created: datetime | None,
        *,
        status: str = "booked",
        updated: datetime | None = None,
    ) -> None:
        appointment_id = f"eApt{uuid.uuid4().hex[:16]}"
        body: dict[str, Any] = {
            "resourceType": "Appointment",
            "id": appointment_id,
            "status": status,
            "serviceType": [service],
            "start": at(1, 20).replace(year=2027).isoformat(),
            "participant": [
                {"actor": {"reference": f"Patient/{who[0]}"}, "status": "accepted"},
                {"actor": {"reference": "Location/eT1Hq6cZ8yLw3PbN5rKa2sV9"}, "status": "accepted"},
            ],
            "comment": "Dilated exam; bring glasses / traiga sus lentes",
        }
        if created is not None:
            body["created"] = created.isoformat().replace("+00:00", "Z")
        self.rows[ResourceState].append(
            {
                "resource_type": "Appointment",
                "resource_id": appointment_id,
                "patient_ref": f"Patient/{who[0]}",
                "last_updated": updated or created,
                "body": body,
            }
        )

    def write(self, factory: sessionmaker[Session]) -> None:
        with transaction(factory) as session:
            for model, rows in self.rows.items():
                if rows:
                    session.execute(insert(model), rows)


def seed(factory: sessionmaker[Session]) -> None:
    clinic = Clinic()
    clinic.campaign(
        EYE_CAMPAIGN,
        "Diabetes: yearly eye exam",
        "preventive-care",
        {
            "description": "Active diabetes, no eye exam in a year",
            "conditions": ["http://snomed.info/sct|44054006"],
            "care_service_types": CARE,
        },
    )
    clinic.campaign(TIP_CAMPAIGN, "Winter walking", "health-tips", {"age": {"min": 18}})

    mary = clinic.message(MARY)
    clinic.reply(MARY, "STOP", "opt-out", at(11, 4), mary)
    clinic.appointment(MARY, EYE_EXAM, at(11, 2) + timedelta(days=70))

    jose_1 = clinic.message(JOSE)
    jose_2 = clinic.message(JOSE, run=2, on=at(11, 9))
    clinic.reply(JOSE, "Sí, gracias. ¿Tienen cita en Eastside?", "message", at(11, 3), jose_1)
    clinic.reply(JOSE, "Ya hice la cita", "message", at(11, 10), jose_2)
    clinic.appointment(JOSE, EYE_EXAM, at(12, 10))

    clinic.message(GRACE)
    clinic.reply(GRACE, "STOP", "opt-out", at(11, 12), None)  # ten days on: not caused
    clinic.appointment(GRACE, FOLLOW_UP, at(11, 5))
    clinic.appointment(GRACE, EYE_EXAM, at(11, 6), status="cancelled")

    clinic.message(AHMED, delivery="undelivered")
    clinic.appointment(AHMED, EYE_EXAM, at(10, 20))  # booked before the campaign

    clinic.message(LIN)
    clinic.appointment(LIN, EYE_EXAM, None, updated=at(11, 20))

    clinic.message(("eW1thH3ld0nE", ""), status="withheld", reason="no-contact")
    clinic.message(("eW1thH3ldtW0", ""), status="withheld", reason="opted-out")
    clinic.message(("eG4veUp0nIt", "+16175550199"), status="failed", delivery=None)

    reminder = clinic.message(MARY, campaign=None, on=at(11, 5))
    clinic.reply(MARY, "C", "confirm", at(11, 5, 16), reminder)
    tip = clinic.message(MARY, campaign=TIP_CAMPAIGN, on=at(11, 3))
    clinic.reply(MARY, "Thanks!", "message", at(11, 3, 16), tip)
    clinic.write(factory)


@pytest.fixture
def factory(database_url: str) -> Any:
    engine = make_engine(database_url)
    seed(make_session_factory(engine))
    yield make_session_factory(engine)
    engine.dispose()


def test_a_preventive_care_campaign_reports_its_exact_numbers(factory: Any) -> None:
    outcome = outcomes.load(factory, EYE_CAMPAIGN)

    assert (outcome.messages, outcome.sent, outcome.delivered, outcome.failed) == (9, 6, 5, 2)
    assert outcome.withheld_by_reason == {"no-contact": 1, "opted-out": 1}
    assert outcome.recipients == 5
    assert (outcome.opt_outs.numerator, outcome.opt_outs.denominator) == (1, 5)  # Mary only
    assert outcome.replies == 3  # Mary's STOP and José's two answers
    assert outcome.booked is not None
    assert (outcome.booked.numerator, outcome.booked.denominator) == (2, 5)  # José and Lin


def test_a_longer_opt_out_window_counts_the_later_stop(factory: Any) -> None:
    outcome = outcomes.load(factory, EYE_CAMPAIGN, opt_out_days=14)

    assert outcome.opt_outs.numerator == 2  # Mary, and Grace ten days on


def test_a_health_tip_campaign_counts_only_its_own_messages_and_has_no_booking_measure(
    factory: Any,
) -> None:
    outcome = outcomes.load(factory, TIP_CAMPAIGN)

    assert (outcome.messages, outcome.delivered, outcome.replies) == (1, 1, 1)
    assert outcome.opt_outs.numerator == 0  # Mary's STOP answered the eye-exam message
    assert outcome.booked is None
    assert outcome.as_json()["booked_care"] is None


def test_report_campaign_prints_the_numbers_and_no_patient(tmp_path: Path) -> None:
    (tmp_path / "var").mkdir(mode=0o700)
    with sqlite_database(tmp_path / "var") as url:
        engine = make_engine(url)
        seed(make_session_factory(engine))
        engine.dispose()
    clean = {k: v for k, v in os.environ.items() if not k.startswith("FHIR_BRIDGE_")}

    def report(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "fhir_bridge", "report", "--campaign", *args],
            cwd=tmp_path,
            env=clean,
            capture_output=True,
            text=True,
            timeout=60,
        )

    text, as_json, unknown = report(EYE_CAMPAIGN), report(EYE_CAMPAIGN, "--json"), report("x")

    assert text.returncode == 0, text.stderr
    assert "booked the care within 60 days  2 (2 of 5 of recipients)" in text.stdout
    assert "opt-outs within 7 days" in text.stdout
    assert json.loads(as_json.stdout)["booked_care"]["numerator"] == 2
    phi = [MARY[0], MARY[1], JOSE[1], "Sí, gracias", "Ya hice la cita"]
    assert not [value for value in phi if value in text.stdout + as_json.stdout]
    assert unknown.returncode != 0 and "no campaign with that id" in unknown.stderr
