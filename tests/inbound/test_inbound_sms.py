"""POST /twilio/inbound and the work after it: STOP/START/HELP/C/R/crisis/free text."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from fhir_bridge.inbound import repository
from fhir_bridge.inbound.jobs import process_inbound_message
from fhir_bridge.store.db import transaction
from fhir_bridge.store.models import InboundMessage, LedgerEntry, SmsReply
from tests.inbound.conftest import (
    APPOINTMENT_ID,
    PATIENT_PHONE,
    PATIENT_REF,
    TwoWay,
    appointment,
    seed_reminder,
)

OPT_OUT_TEXT = (
    "You are unsubscribed from Riverside Health messages. No more messages will be sent. "
    "Reply START to resubscribe."
)


def _receive(two_way: TwoWay, body: str, sid: str, sender: str = PATIENT_PHONE) -> str:
    response = two_way.inbound(body, sid=sid, sender=sender)
    assert response.status_code == 200
    inbound_id = two_way.enqueued[-1][1][0]
    return process_inbound_message(two_way.runtime, inbound_id)


def _ledger(two_way: TwoWay) -> list[tuple[str | None, str, str]]:
    with transaction(two_way.runtime.sessions) as session:
        return [(e.address, e.action, e.source) for e in session.scalars(select(LedgerEntry))]


def _only(two_way: TwoWay, resource_type: str) -> dict[str, Any]:
    found = two_way.ehr.of_type(resource_type)
    assert len(found) == 1, found
    return found[0]


@pytest.fixture
def reminded(two_way: TwoWay) -> TwoWay:
    """The patient got an SMS reminder for an appointment still awaiting confirmation."""
    seed_reminder(two_way.runtime)
    two_way.ehr.put(appointment())
    return two_way


def test_webhook_answers_with_empty_twiml(two_way: TwoWay) -> None:
    response = two_way.inbound("Hello", sid="SM00000000000000000000000000000001")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/xml")
    assert response.text.endswith("<Response/>")


def test_tampered_inbound_is_refused_and_not_stored(two_way: TwoWay) -> None:
    form = {"MessageSid": "SM" + "1" * 32, "From": PATIENT_PHONE, "Body": "STOP"}
    response = two_way.post_signed("/twilio/inbound", form, token="not-the-token")

    assert response.status_code == 403
    with transaction(two_way.runtime.sessions) as session:
        assert session.scalar(select(func.count()).select_from(InboundMessage)) == 0


def test_duplicate_message_sid_is_stored_and_processed_once(reminded: TwoWay) -> None:
    sid = "SM00000000000000000000000000000002"
    reminded.inbound("STOP", sid=sid)
    reminded.inbound("STOP", sid=sid)

    assert len(reminded.enqueued) == 1
    process_inbound_message(reminded.runtime, reminded.enqueued[0][1][0])
    assert process_inbound_message(reminded.runtime, reminded.enqueued[0][1][0]) == "skipped"
    assert reminded.sms.texts_to(PATIENT_PHONE) == [OPT_OUT_TEXT]


def test_unknown_number_gets_only_the_generic_reply(two_way: TwoWay) -> None:
    outcome = _receive(two_way, "Is my appointment tomorrow?", "SM" + "3" * 32, "+16175559876")

    assert outcome == "unknown-sender"
    assert two_way.sms.texts_to("+16175559876") == [
        "This number can't read replies; call your clinic at (555) 010-0100."
    ]
    assert two_way.ehr.resources == {}
    assert _ledger(two_way) == []


def test_stop_opts_out_confirms_once_and_records_consent_and_communication(
    reminded: TwoWay,
) -> None:
    outcome = _receive(reminded, "Stop", "SM" + "4" * 32)

    assert outcome == "opt-out"
    assert _ledger(reminded) == [(PATIENT_PHONE, "opt-out", "sms-keyword")]
    assert reminded.sms.texts_to(PATIENT_PHONE) == [OPT_OUT_TEXT]
    consent = _only(reminded, "Consent")
    assert consent["provision"]["type"] == "deny"
    assert consent["identifier"] == [
        {"system": "urn:fhir-bridge:inbound-sms", "value": "SM" + "4" * 32}
    ]
    communication = _only(reminded, "Communication")
    assert communication["sender"] == {"reference": PATIENT_REF}
    assert communication["recipient"] == [{"reference": "Organization/riverside-health"}]
    assert communication["inResponseTo"] == [{"reference": "Communication/comm-5551"}]
    assert communication["payload"] == [{"contentString": "Stop"}]


def test_stop_processed_again_after_a_crash_does_not_repeat_anything(reminded: TwoWay) -> None:
    _receive(reminded, "STOP", "SM" + "5" * 32)
    with transaction(reminded.runtime.sessions) as session:
        row = session.scalars(select(InboundMessage)).one()
        row.status, row.steps_done = "pending", []

    process_inbound_message(reminded.runtime, row.id)

    assert reminded.sms.texts_to(PATIENT_PHONE) == [OPT_OUT_TEXT]
    assert len(reminded.ehr.of_type("Consent")) == 1
    assert len(reminded.ehr.of_type("Communication")) == 1


def test_ehr_outage_defers_and_resumes_without_a_second_confirmation(reminded: TwoWay) -> None:
    reminded.ehr.unavailable = True
    assert _receive(reminded, "STOP", "SM" + "6" * 32) == "retry"
    reminded.ehr.unavailable = False
    with transaction(reminded.runtime.sessions) as session:
        inbound_id = session.scalars(select(InboundMessage.id)).one()

    assert process_inbound_message(reminded.runtime, inbound_id) == "opt-out"
    assert reminded.sms.texts_to(PATIENT_PHONE) == [OPT_OUT_TEXT]
    assert _ledger(reminded) == [(PATIENT_PHONE, "opt-out", "sms-keyword")]


def test_start_opts_back_in_with_a_permit_consent(reminded: TwoWay) -> None:
    _receive(reminded, "STOP", "SM" + "7" * 32)

    assert _receive(reminded, "START", "SM" + "8" * 32) == "opt-in"
    assert [a for _, a, _ in _ledger(reminded)] == ["opt-out", "opt-in"]
    permits = [c for c in reminded.ehr.of_type("Consent") if c["provision"]["type"] == "permit"]
    assert len(permits) == 1
    assert "subscribed to Riverside Health" in reminded.sms.texts_to(PATIENT_PHONE)[-1]


def test_help_names_the_clinic_and_phone(reminded: TwoWay) -> None:
    assert _receive(reminded, "help", "SM" + "9" * 32) == "help"
    reply = reminded.sms.texts_to(PATIENT_PHONE)[-1]
    assert "Riverside Health" in reply and "(555) 010-0100" in reply


@pytest.mark.parametrize("body", ["C", "yes"], ids=["c", "yes-after-reminder"])
def test_confirmation_accepts_the_patients_participation(reminded: TwoWay, body: str) -> None:
    assert _receive(reminded, body, "SM" + "a" * 32) == "confirm"

    stored = reminded.ehr.resources[f"Appointment/{APPOINTMENT_ID}"]
    patient = next(p for p in stored["participant"] if p["actor"]["reference"] == PATIENT_REF)
    assert patient["status"] == "accepted"
    assert reminded.ehr.updates == [(f"Appointment/{APPOINTMENT_ID}", "1")]
    assert "confirmed" in reminded.sms.texts_to(PATIENT_PHONE)[-1]


def test_confirmation_retries_after_a_version_conflict(reminded: TwoWay) -> None:
    reminded.ehr.conflicts[f"Appointment/{APPOINTMENT_ID}"] = 1

    _receive(reminded, "C", "SM" + "b" * 32)

    assert [v for _, v in reminded.ehr.updates] == ["1", "2"]
    stored = reminded.ehr.resources[f"Appointment/{APPOINTMENT_ID}"]
    assert stored["participant"][0]["status"] == "accepted"


def test_confirming_a_cancelled_appointment_asks_the_patient_to_call(reminded: TwoWay) -> None:
    reminded.ehr.put({**appointment(), "status": "cancelled"})

    _receive(reminded, "C", "SM" + "c" * 32)

    assert reminded.ehr.updates == []
    assert "Please call Riverside Health" in reminded.sms.texts_to(PATIENT_PHONE)[-1]


def test_reschedule_creates_a_routine_task_for_staff(reminded: TwoWay) -> None:
    assert _receive(reminded, "R", "SM" + "d" * 32) == "reschedule"

    task = _only(reminded, "Task")
    assert (task["status"], task["intent"], task["priority"]) == ("requested", "order", "routine")
    assert task["code"]["text"] == "reschedule"
    assert task["focus"] == {"reference": f"Appointment/{APPOINTMENT_ID}"}
    assert task["for"] == {"reference": PATIENT_REF}
    assert "will call you" in reminded.sms.texts_to(PATIENT_PHONE)[-1]


def test_crisis_gets_resources_first_and_an_urgent_task(reminded: TwoWay) -> None:
    assert _receive(reminded, "i want to end my life", "SM" + "e" * 32) == "crisis"

    assert reminded.sms.texts_to(PATIENT_PHONE)[0].startswith("If you are in danger")
    task = _only(reminded, "Task")
    assert task["priority"] == "stat"
    communication = _only(reminded, "Communication")
    assert task["focus"] == {"reference": f"Communication/{communication['id']}"}
    inbox = _inbox(reminded)
    assert [(i["kind"], i["priority"]) for i in inbox] == [("crisis", "stat")]


def test_crisis_reply_is_sent_even_after_opt_out(reminded: TwoWay) -> None:
    _receive(reminded, "STOP", "SM" + "f" * 32)

    _receive(reminded, "I took an overdose", "SM" + "0" * 31 + "f")

    assert reminded.sms.texts_to(PATIENT_PHONE)[-1].startswith("If you are in danger")


def test_free_text_becomes_a_communication_and_a_staff_inbox_item(reminded: TwoWay) -> None:
    assert _receive(reminded, "Can I bring my daughter?", "SM" + "1" * 32) == "other"

    communication = _only(reminded, "Communication")
    assert communication["inResponseTo"] == [{"reference": "Communication/comm-5551"}]
    assert communication["about"] == [{"reference": f"Appointment/{APPOINTMENT_ID}"}]
    inbox = _inbox(reminded)
    assert inbox[0]["communication"] == f"Communication/{communication['id']}"
    assert inbox[0]["kind"] == "message"


def test_acknowledgement_is_withheld_from_an_opted_out_number(reminded: TwoWay) -> None:
    _receive(reminded, "STOP", "SM" + "2" * 32)

    _receive(reminded, "ok thanks for the info yesterday", "SM" + "0" * 31 + "2")

    assert reminded.sms.texts_to(PATIENT_PHONE) == [OPT_OUT_TEXT]
    with transaction(reminded.runtime.sessions) as session:
        kinds = {r.kind: r.status for r in session.scalars(select(SmsReply))}
    assert kinds["received"] == "withheld"


def _inbox(two_way: TwoWay) -> list[dict[str, str]]:
    with transaction(two_way.runtime.sessions) as session:
        return [
            {
                "kind": item.kind,
                "priority": item.priority,
                "communication": item.communication_ref or "",
            }
            for item in repository.open_inbox_items(session, PATIENT_REF, 50)
        ]
