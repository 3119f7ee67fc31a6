"""The health-tips invitation: only to patients who may get care texts, once per period, in
their language and one segment, sent through the normal lifecycle and written back."""

from __future__ import annotations

from datetime import UTC, datetime

from fhir_bridge.outreach.planning import replan_patient
from fhir_bridge.store.db import transaction
from fhir_bridge.store.models import PlannedMessage
from rules.sms_length import sms_segments
from tests.optin.conftest import (
    DAVID,
    DAVID_ID,
    EMAIL_ONLY,
    MARIA,
    MARIA_PHONE,
    ROSA,
    ROSA_PHONE,
    Clinic,
)


def _sms_deny_consent(patient_id: str) -> dict[str, object]:
    """A Consent in the chart: the patient refused text messages (front desk, on paper)."""
    return {
        "resourceType": "Consent",
        "id": "eCnsSmsDeny4471",
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
        "patient": {"reference": f"Patient/{patient_id}"},
        "dateTime": "2026-03-02T16:20:00-05:00",
        "policyRule": {
            "coding": [
                {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "OPTOUT"}
            ]
        },
        "provision": {
            "type": "deny",
            "action": [
                {"coding": [{"system": "http://hl7.org/fhir/contact-point-system", "code": "sms"}]}
            ],
        },
    }


def test_only_patients_who_may_get_care_texts_are_invited(clinic: Clinic) -> None:
    clinic.ehr.update(_sms_deny_consent(DAVID_ID))

    summary = clinic.invite(MARIA, DAVID, EMAIL_ONLY, "Patient/eDoesNotExist000")

    assert summary.invited == 1
    assert dict(summary.skipped) == {
        "opted-out": 1,
        "no-contact": 1,
        "patient-not-found": 1,
    }
    assert [row.patient_ref for row in clinic.invitations()] == [MARIA]


def test_a_patient_is_invited_at_most_once_per_period(clinic: Clinic) -> None:
    assert clinic.invite(MARIA).invited == 1
    clinic.clock.advance(days=1)
    again = clinic.invite(MARIA)
    clinic.clock.advance(days=clinic.runtime.settings.optin_invite_period_days)
    after_the_period = clinic.invite(MARIA)

    assert (again.invited, dict(again.skipped)) == (0, {"invited-recently": 1})
    assert after_the_period.invited == 1
    assert len(clinic.invitations()) == 2


def test_the_invitation_is_sent_in_the_patients_language_in_one_segment(clinic: Clinic) -> None:
    clinic.invite(MARIA, ROSA)
    clinic.deliver_invitations()

    (english,) = clinic.sms.texts_to(MARIA_PHONE)
    (spanish,) = clinic.sms.texts_to(ROSA_PHONE)
    assert english.startswith("Riverside Health: reply YES to get health tips by text")
    assert "Msg&data rates may apply" in english and english.endswith("STOP to opt out.")
    assert spanish.startswith("Riverside Health: responda SI para recibir consejos de salud")
    assert sms_segments(english) == sms_segments(spanish) == ("gsm7", 1)


def test_the_sent_invitation_is_written_back_as_a_communication(clinic: Clinic) -> None:
    clinic.invite(MARIA)
    (message_id,) = clinic.deliver_invitations()

    with transaction(clinic.runtime.sessions) as session:
        row = session.get(PlannedMessage, message_id)
        assert row is not None
        status, communication_id = row.status, row.communication_id
    communication = clinic.ehr.read("Communication", str(communication_id))
    assert status == "sent"
    assert communication["subject"] == {"reference": MARIA}
    assert {"system": "urn:fhir-bridge:outreach-purpose", "code": "care-coordination"} in [
        coding for category in communication["category"] for coding in category["coding"]
    ]


def test_an_invitation_planned_at_night_waits_for_the_morning(clinic: Clinic) -> None:
    clinic.clock.now = datetime(2026, 12, 2, 4, 30, tzinfo=UTC)  # 11:30 PM in Boston

    clinic.invite(MARIA)

    (row,) = clinic.invitations()
    assert row.status == "planned"
    assert row.send_at > clinic.clock.now
    assert not clinic.enqueued


def test_replanning_the_patient_leaves_the_invitation_alone(clinic: Clinic) -> None:
    clinic.clock.now = datetime(2026, 12, 2, 4, 30, tzinfo=UTC)  # held to the morning
    clinic.invite(MARIA)
    patient = clinic.ehr.read("Patient", MARIA.partition("/")[2])

    with transaction(clinic.runtime.sessions) as session:
        replan_patient(
            session,
            patient_ref=MARIA,
            patient=patient,
            config=clinic.runtime.rules,
            now=clinic.clock.now,
        )

    (row,) = clinic.invitations()
    assert (row.status, row.reason) == ("planned", None)
