"""End to end, on real parts (fake EHR process, uvicorn API, Celery worker on Redis,
PostgreSQL, a fake Twilio that posts signed callbacks and inbound SMS): a reminder SMS is
delivered and its Communication completed; C, R, a crisis, free text, an unknown number and
STOP each lead to the right replies and EHR records; after STOP nothing more is sent."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from fhir_bridge.fhir.keys import generate_private_key, load_signing_key, public_jwks
from fhir_bridge.sandbox.process import EhrServer
from fhir_bridge.settings import Settings
from tests.e2e.fixtures import appointment
from tests.e2e.harness import REDIS_BROKER, write_rules
from tests.e2e.harness import wait_for as _wait_for
from tests.support.bridge import BridgeProcesses
from tests.support.databases import postgres_database
from tests.support.fake_twilio import FakeTwilio

pytestmark = pytest.mark.integration

CLINIC_NUMBER = "+16175550100"
PHONE = "+16175550123"
STRANGER = "+16175559876"
LEAD = timedelta(hours=1)
OPT_OUT_TEXT = (
    "You are unsubscribed from Riverside Health messages. No more messages will be sent. "
    "Reply START to resubscribe."
)
TWO_WAY_SCOPE = (
    Settings().ehr_scope.replace("system/Appointment.rs", "system/Appointment.rus")
    + " system/Task.crs"
)


@dataclass
class SmsStack:
    ehr: EhrServer
    twilio: FakeTwilio
    bridge: BridgeProcesses

    def wait_for(self, condition: Any, what: str, timeout: float = 40) -> Any:
        return _wait_for(condition, timeout=timeout, what=what, logs=self.bridge.logs)

    def texts_to(self, number: str) -> list[str]:
        return [form["Body"] for form in list(self.twilio.create_requests) if form["To"] == number]

    def reply(self, body: str, sender: str = PHONE) -> None:
        url = f"{self.bridge.base_url}/twilio/inbound"
        status = self.twilio.send_inbound(url, from_number=sender, to=CLINIC_NUMBER, body=body)
        assert status == 200

    def search(self, resource_type: str, **params: str) -> list[dict[str, Any]]:
        bundle = self.ehr.search(resource_type, **params)
        return [entry["resource"] for entry in bundle.get("entry", [])]


def _sms_patient(mrn: str) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "identifier": [
            {
                "use": "usual",
                "type": {
                    "coding": [
                        {"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}
                    ]
                },
                "system": "urn:oid:1.2.840.114350.1.13.0.1.7.5.737384.14",
                "value": mrn,
            }
        ],
        "active": True,
        "name": [{"use": "official", "family": "Okafor", "given": ["Grace"]}],
        "telecom": [{"system": "phone", "value": PHONE, "use": "mobile", "rank": 1}],
        "gender": "female",
        "birthDate": "1971-09-30",
    }


def _awaiting_confirmation(patient_id: str, start: datetime) -> dict[str, Any]:
    booked = appointment(patient_id, start)
    booked["participant"][0]["status"] = "needs-action"
    return booked


@contextmanager
def sms_stack(tmp_path: Path) -> Iterator[SmsStack]:
    with ExitStack() as stack:
        ehr = stack.enter_context(EhrServer())
        twilio = stack.enter_context(FakeTwilio(callback_delay=0.3))
        database_url = stack.enter_context(postgres_database())
        pem = generate_private_key("ES384")
        ehr.register_client("fhir-bridge-e2e", public_jwks(load_signing_key(pem)), TWO_WAY_SCOPE)
        rules_path = write_rules(tmp_path / "rules.yaml", ["PT1H"])
        rules = yaml.safe_load(rules_path.read_text())
        rules["channels"]["preferred"] = ["sms", "email"]
        rules["appointment_reminders"]["combine_same_day"] = False
        rules_path.write_text(yaml.safe_dump(rules, sort_keys=False))
        env = {
            "FHIR_BRIDGE_DATABASE_URL": database_url,
            "FHIR_BRIDGE_BROKER_URL": REDIS_BROKER,
            "FHIR_BRIDGE_QUEUE_NAME": f"e2e-sms-{uuid.uuid4().hex[:10]}",
            "FHIR_BRIDGE_DATA_DIR": str(tmp_path),
            "FHIR_BRIDGE_EHR_BASE_URL": ehr.base_url,
            "FHIR_BRIDGE_EHR_AUTH": "smart-backend",
            "FHIR_BRIDGE_EHR_CLIENT_ID": "fhir-bridge-e2e",
            "FHIR_BRIDGE_EHR_PRIVATE_KEY": pem,
            "FHIR_BRIDGE_EHR_SIGNING_ALG": "ES384",
            "FHIR_BRIDGE_EHR_SCOPE": TWO_WAY_SCOPE,
            "FHIR_BRIDGE_HEARTBEAT_PERIOD_SECONDS": "5",
            "FHIR_BRIDGE_NOTIFICATION_SECRET": "e2e-sms-Wq7ZkP2xR9mVt4LsN8cYb3HjG6dFa5Ue-n7Kq2x",
            "FHIR_BRIDGE_EMAIL_PROVIDER": "none",
            "FHIR_BRIDGE_SMS_PROVIDER": "twilio",
            "FHIR_BRIDGE_TWILIO_BASE_URL": twilio.base_url,
            "FHIR_BRIDGE_TWILIO_ACCOUNT_SID": twilio.account_sid,
            "FHIR_BRIDGE_TWILIO_AUTH_TOKEN": twilio.auth_token,
            "FHIR_BRIDGE_TWILIO_FROM_NUMBER": CLINIC_NUMBER,
            "FHIR_BRIDGE_CLINIC_REFERENCE": "Organization/riverside-health",
            "FHIR_BRIDGE_RULES_FILE": str(rules_path),
            "FHIR_BRIDGE_DISPATCH_INTERVAL_SECONDS": "1",
            "FHIR_BRIDGE_RELAY_INTERVAL_SECONDS": "1",
            "FHIR_BRIDGE_SUBSCRIPTION_CHECK_INTERVAL_SECONDS": "2",
            "FHIR_BRIDGE_LEASE_SECONDS": "8",
            "FHIR_BRIDGE_CLOCK_SKEW_SECONDS": "2",
        }
        bridge = BridgeProcesses(env, tmp_path)
        stack.callback(bridge.stop)
        bridge.cli("migrate")
        bridge.start_api()
        assert len(json.loads(bridge.cli("subscriptions", "create").stdout)) == 3
        bridge.start_worker()
        yield SmsStack(ehr=ehr, twilio=twilio, bridge=bridge)


def _participant_status(s: SmsStack, appointment_id: str, patient_id: str) -> str:
    booked = s.ehr.read("Appointment", appointment_id)
    actor = f"Patient/{patient_id}"
    return next(p["status"] for p in booked["participant"] if p["actor"]["reference"] == actor)


def _tasks(s: SmsStack, priority: str) -> list[dict[str, Any]]:
    return [t for t in s.search("Task") if t.get("priority") == priority]


def _inbound_communications(s: SmsStack, patient_id: str) -> list[dict[str, Any]]:
    found = s.search("Communication", subject=f"Patient/{patient_id}")
    return [c for c in found if c.get("sender") == {"reference": f"Patient/{patient_id}"}]


def test_two_way_sms_from_reminder_to_stop(tmp_path: Path) -> None:
    with sms_stack(tmp_path) as s:
        patient_id = s.ehr.create(_sms_patient("MRN-3301"))["id"]
        start = datetime.now(UTC) + LEAD + timedelta(seconds=6)
        appointment_id = s.ehr.create(_awaiting_confirmation(patient_id, start))["id"]

        reminder = s.wait_for(
            lambda: [
                c
                for c in s.search("Communication", subject=f"Patient/{patient_id}")
                if c["status"] == "completed"
                and c.get("sender") != {"reference": f"Patient/{patient_id}"}
            ],
            "the delivered reminder's Communication to be completed",
            timeout=60,
        )[0]
        assert reminder["medium"][0]["coding"][0]["code"] == "SMSWRIT"
        assert len(s.texts_to(PHONE)) == 1

        s.reply("C")
        s.wait_for(
            lambda: _participant_status(s, appointment_id, patient_id) == "accepted",
            "the patient's participation to be accepted",
        )

        s.reply("R")
        routine = s.wait_for(lambda: _tasks(s, "routine"), "a reschedule Task")
        assert routine[0]["focus"] == {"reference": f"Appointment/{appointment_id}"}

        s.reply("I want to kill myself")
        s.wait_for(lambda: _tasks(s, "stat"), "an urgent Task")
        assert any(text.startswith("If you are in danger") for text in s.texts_to(PHONE))

        s.reply("Is there parking near the clinic?")
        free_text = s.wait_for(
            lambda: [
                c
                for c in _inbound_communications(s, patient_id)
                if c["payload"][0]["contentString"] == "Is there parking near the clinic?"
            ],
            "a Communication for the free-text reply",
        )
        assert free_text[0]["inResponseTo"] == [{"reference": f"Communication/{reminder['id']}"}]

        s.reply("hello?", sender=STRANGER)
        s.wait_for(lambda: s.texts_to(STRANGER), "the generic reply to an unknown number")

        s.reply("STOP")
        s.wait_for(lambda: s.search("Consent", patient=f"Patient/{patient_id}"), "a deny Consent")
        s.wait_for(
            lambda: [
                c
                for c in _inbound_communications(s, patient_id)
                if c["payload"][0]["contentString"] == "STOP"
            ],
            "a Communication for STOP",
        )

        second = s.ehr.create(
            _awaiting_confirmation(patient_id, datetime.now(UTC) + LEAD + timedelta(seconds=12))
        )
        withheld = s.wait_for(
            lambda: [
                c
                for c in s.search("Communication", subject=f"Patient/{patient_id}")
                if c["status"] == "not-done"
                and c.get("about") == [{"reference": f"Appointment/{second['id']}"}]
            ],
            "the second reminder to be withheld",
            timeout=60,
        )
        assert withheld[0]["statusReason"]["coding"][0]["code"] == "opted-out"

        texts = s.texts_to(PHONE)
        assert texts.count(OPT_OUT_TEXT) == 1
        assert texts[-1] == OPT_OUT_TEXT
        assert s.texts_to(STRANGER) == [
            "This number can't read replies; call your clinic at (555) 010-0100."
        ]
        consent = s.search("Consent", patient=f"Patient/{patient_id}")
        assert [c["provision"]["type"] for c in consent] == ["deny"]
