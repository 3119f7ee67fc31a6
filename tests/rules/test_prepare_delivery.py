"""Send-time decision: protections, caps, consent and channel, then the final text."""

from __future__ import annotations

import json
from dataclasses import replace

from rules.consent import LedgerEntry
from rules.engine import plan_for_patient
from rules.model import PatientSnapshot, PlannedMessage, PreparedDelivery, WithheldMessage
from rules.outreach import prepare_delivery
from tests.rules.factories import (
    FIXTURES,
    PATIENT_REF,
    appointment,
    default_config,
    english_patient,
    patient,
    sent,
    snapshot,
    utc,
)

NOW = utc("2026-11-23T12:00:00")


def _first_reminder() -> tuple[PlannedMessage, PatientSnapshot]:
    snap = snapshot(appointment())
    plan = plan_for_patient(snap, default_config(), NOW)
    return plan.messages[0], snap


def test_consented_reminder_goes_by_sms_to_the_mobile_number_in_spanish() -> None:
    message, snap = _first_reminder()

    result = prepare_delivery(message, snap, [], [], default_config(), message.send_at)

    assert isinstance(result, PreparedDelivery)
    assert (result.channel, result.address) == ("sms", "+16175550142")
    assert result.rendered.text.startswith("Hola Mari, su cita es el mar 1 dic a las 10:30")
    assert result.rendered.text.endswith("Responda BAJA para no recibir SMS.")
    assert result.rendered.segments == 1


def test_patient_who_died_after_planning_is_not_messaged() -> None:
    message, _ = _first_reminder()
    later = snapshot(appointment(), patient_resource=patient(deceasedBoolean=True))

    result = prepare_delivery(message, later, [], [], default_config(), message.send_at)

    assert isinstance(result, WithheldMessage)
    assert result.reason == "deceased"


def test_minor_is_not_messaged_directly_by_default() -> None:
    child = english_patient(birthDate="2015-06-01")
    plan = plan_for_patient(snapshot(appointment(), patient_resource=child), default_config(), NOW)

    assert {w.reason for w in plan.withheld} == {"minor"}


def test_daily_cap_is_checked_again_at_send_time() -> None:
    message, _ = _first_reminder()
    busy = snapshot(
        appointment(),
        history=[sent("refill-notice|MedicationRequest/x|fill-1", "2026-11-28T14:00:00")],
    )

    result = prepare_delivery(message, busy, [], [], default_config(), message.send_at)

    assert isinstance(result, WithheldMessage)
    assert (result.reason, result.detail) == ("cap-reached", "per-day cap reached")


def test_sms_stop_in_the_ledger_moves_the_reminder_to_email() -> None:
    message, snap = _first_reminder()
    stop = LedgerEntry(
        id="ledger-1",
        patient_ref=PATIENT_REF,
        channel="sms",
        address="+16175550142",
        purpose="*",
        action="opt-out",
        recorded_at=utc("2026-11-24T18:00:00"),
        source="sms-keyword",
    )

    result = prepare_delivery(message, snap, [], [stop], default_config(), message.send_at)

    assert isinstance(result, PreparedDelivery)
    assert result.channel == "email"
    assert result.rendered.subject == "Recordatorio de cita de Riverside Health"


def test_no_usable_contact_is_withheld_with_the_consent_engines_reason() -> None:
    message, _ = _first_reminder()
    unreachable = snapshot(appointment(), patient_resource=patient(telecom=None))

    result = prepare_delivery(message, unreachable, [], [], default_config(), message.send_at)

    assert isinstance(result, WithheldMessage)
    assert result.reason == "no-contact"


def test_text_too_long_for_the_sms_cap_is_withheld_not_truncated() -> None:
    message, snap = _first_reminder()
    ten_visits = "8:00, 9:00, 10:00, 11:00, 13:00, 14:00, 15:00, 16:00, 17:00 y 18:00"
    crowded = replace(
        message,
        template="appointment-reminder-combined",
        variables=message.variables | {"time": ten_visits},
    )

    result = prepare_delivery(crowded, snap, [], [], default_config(), message.send_at)

    assert isinstance(result, WithheldMessage)
    assert result.reason == "message-too-long"


def test_ehr_consent_opting_out_of_sms_moves_the_reminder_to_email() -> None:
    bundle = json.loads((FIXTURES / "bundle-maria.json").read_text(encoding="utf-8"))
    consents = [
        e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Consent"
    ]
    message, snap = _first_reminder()

    result = prepare_delivery(message, snap, consents, [], default_config(), message.send_at)

    assert isinstance(result, PreparedDelivery)
    assert result.channel == "email"
    sms_attempt = result.trace["consent"]["attempts"][0]
    assert (sms_attempt["channel"], sms_attempt["used"]) == ("sms", ["Consent/eCnsT0ptOutSms1"])
