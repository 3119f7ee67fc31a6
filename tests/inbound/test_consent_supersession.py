"""One truth per consent: a later STOP or START ends the earlier Consent we wrote in the EHR
(status inactive, period closed), so at most one active Consent per patient, channel,
address and purpose comes from us. Against the fake EHR process."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from fhir_bridge.sandbox.process import EhrServer
from fhir_bridge.store.db import transaction
from fhir_bridge.store.models import PlannedMessage
from tests.inbound.conftest import NOW, PATIENT_PHONE, PATIENT_REF, seed_reminder
from tests.inbound.optout_world import OptOutWorld, open_world


@pytest.fixture(scope="module")
def ehr_server() -> Iterator[EhrServer]:
    with EhrServer() as server:
        yield server


@pytest.fixture
def world(
    ehr_server: EhrServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[OptOutWorld]:
    ehr_server.reset()
    for opened in open_world(ehr_server, tmp_path, monkeypatch):
        seed_reminder(opened.runtime)
        yield opened


def _active(consents: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [c for c in consents if c["status"] == "active"]


def test_stop_then_start_leaves_one_active_permit_and_ends_the_deny(world: OptOutWorld) -> None:
    assert world.text("STOP", sid="SM" + "a1" * 16) == "opt-out"
    world.clock.advance(minutes=20)
    assert world.text("START", sid="SM" + "b2" * 16) == "opt-in"

    ours = world.ours("sms")
    (active,) = _active(ours)
    (ended,) = [c for c in ours if c["status"] == "inactive"]
    assert active["provision"]["type"] == "permit"
    assert ended["provision"]["type"] == "deny"
    assert ended["provision"]["period"] == {
        "start": "2026-12-01T14:00:00Z",
        "end": "2026-12-01T14:20:00Z",
    }


def test_stop_start_stop_leaves_one_active_deny(world: OptOutWorld) -> None:
    for keyword, sid in (("STOP", "c3"), ("START", "d4"), ("STOP", "e5")):
        world.text(keyword, sid="SM" + sid * 16)
        world.clock.advance(hours=1)

    ours = world.ours("sms")
    assert len(ours) == 3
    (active,) = _active(ours)
    assert active["provision"]["type"] == "deny"
    assert active["identifier"][0]["value"] == "SM" + "e5" * 16


def test_the_ended_consent_reads_back_as_r4_with_a_new_version(world: OptOutWorld) -> None:
    world.text("STOP", sid="SM" + "f6" * 16)
    world.clock.advance(minutes=5)
    world.text("START", sid="SM" + "a7" * 16)

    ended = next(c for c in world.ours("sms") if c["status"] == "inactive")
    assert ended["meta"]["versionId"] != "1"
    assert ended["dateTime"] == "2026-12-01T14:00:00Z"


def test_a_second_stop_replaces_the_first_deny(world: OptOutWorld) -> None:
    world.text("STOP", sid="SM" + "b8" * 16)
    world.clock.advance(days=2)
    world.text("stop", sid="SM" + "b9" * 16)

    ours = world.ours("sms")
    assert sorted(c["status"] for c in ours) == ["active", "inactive"]
    assert {c["provision"]["type"] for c in ours} == {"deny"}


def test_a_consent_staff_recorded_in_the_ehr_is_never_ended(world: OptOutWorld) -> None:
    staff_permit = world.ehr.create(
        {
            "resourceType": "Consent",
            "status": "active",
            "scope": {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/consentscope",
                        "code": "patient-privacy",
                    }
                ]
            },
            "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
            "patient": {"reference": PATIENT_REF},
            "dateTime": "2026-11-02T16:45:00-05:00",
            "policyRule": {
                "coding": [
                    {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "OPTIN"}
                ]
            },
            "provision": {
                "type": "permit",
                "action": [
                    {
                        "coding": [
                            {"system": "http://hl7.org/fhir/contact-point-system", "code": "sms"}
                        ]
                    }
                ],
            },
        }
    )

    world.text("STOP", sid="SM" + "c9" * 16)
    world.clock.advance(minutes=3)
    world.text("START", sid="SM" + "d0" * 16)

    assert world.ehr.read("Consent", staff_permit["id"])["status"] == "active"


def test_a_start_from_one_number_leaves_the_other_numbers_stop_in_force(
    world: OptOutWorld,
) -> None:
    mobile, landline = PATIENT_PHONE, "+16175550188"
    _texted(world, landline)
    world.text("STOP", sid="SM" + "e1" * 16, sender=mobile)
    world.clock.advance(minutes=2)
    world.text("STOP", sid="SM" + "e2" * 16, sender=landline)
    world.clock.advance(minutes=2)
    world.text("START", sid="SM" + "e3" * 16, sender=mobile)

    active = {
        (c["provision"]["extension"][0]["valueString"], c["provision"]["type"])
        for c in _active(world.ours("sms"))
    }
    assert active == {("***0123", "permit"), ("***0188", "deny")}


def _texted(world: OptOutWorld, number: str) -> None:
    """We sent ``number`` (the patient's other phone) a reminder, so its replies are theirs."""
    with transaction(world.runtime.sessions) as session:
        session.add(
            PlannedMessage(
                id="msg-landline",
                key="appointment-reminder|Appointment/eWLhfjXHp4RUczv2ny7HWkQ3|landline",
                rule="appointment-reminder",
                purpose="appointment-reminder",
                patient_ref=PATIENT_REF,
                about=["Appointment/eWLhfjXHp4RUczv2ny7HWkQ3"],
                send_at=NOW - timedelta(hours=3),
                status="sent",
                template="appointment_reminder",
                language="en",
                variables={},
                trace={},
                channel="sms",
                address=number,
                text="Reminder: visit Thu Dec 3 9:30 AM. Reply C to confirm.",
                provider="twilio",
                provider_message_id="SM" + "7" * 32,
                sent_at=NOW - timedelta(hours=3),
                communication_status="written",
                communication_id="comm-5560",
            )
        )
