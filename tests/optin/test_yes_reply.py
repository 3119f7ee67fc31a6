"""A YES to an open invitation joins health tips: a ledger entry, a Consent for purpose
health-tips in the EHR (written as the STOP/START path writes them), an AuditEvent and the
confirmation in the patient's language. Any other YES is only a reply for the staff inbox;
a STOP afterwards ends it; a crisis in the same text is handled first."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from fhir_bridge.store.db import transaction
from fhir_bridge.store.models import AuditEventRecord, PlannedMessage
from tests.optin.conftest import MARIA, MARIA_PHONE, ROSA, ROSA_PHONE, Clinic

EN_JOINED = (
    "You're signed up for health tips from Riverside Health, about 2 a month. "
    "Msg&data rates may apply. Reply HELP for help, STOP to opt out."
)
ES_JOINED = (
    "Se inscribio en consejos de salud de Riverside Health, unos 2 al mes. Pueden aplicar "
    "tarifas. Responda AYUDA para ayuda, STOP para darse de baja."
)


def _invited(clinic: Clinic, *refs: str) -> Clinic:
    clinic.invite(*refs)
    clinic.deliver_invitations()
    clinic.clock.advance(hours=3)
    return clinic


def _sid(n: int) -> str:
    return f"SM{n:032x}"


def test_yes_to_the_invitation_writes_a_health_tips_consent_to_the_ehr(clinic: Clinic) -> None:
    _invited(clinic, MARIA)

    assert clinic.text("Yes", sid=_sid(1), sender=MARIA_PHONE) == "health-tips-opt-in"

    (consent,) = clinic.health_tips_consents(MARIA)
    provision = consent["provision"]
    assert (consent["status"], provision["type"]) == ("active", "permit")
    assert provision["action"][0]["coding"][0]["code"] == "sms"
    assert [(p["system"].rsplit("/", 1)[-1], p["code"]) for p in provision["purpose"]] == [
        ("outreach-purpose", "health-tips"),
        ("v3-ActReason", "HMARKT"),
    ]
    assert consent["identifier"] == [{"system": "urn:fhir-bridge:inbound-sms", "value": _sid(1)}]


def test_yes_to_the_invitation_is_recorded_in_the_ledger_and_audited(clinic: Clinic) -> None:
    _invited(clinic, MARIA)

    clinic.text("YES", sid=_sid(2), sender=MARIA_PHONE)

    assert clinic.health_tips_ledger() == [(MARIA, "opt-in", "sms-keyword")]
    with transaction(clinic.runtime.sessions) as session:
        events = [str(e.resource) for e in session.scalars(select(AuditEventRecord))]
    assert any("sms-opt-in" in event and _sid(2) in event for event in events)


def test_yes_gets_the_confirmation_in_english(clinic: Clinic) -> None:
    _invited(clinic, MARIA)

    clinic.text("yes!", sid=_sid(3), sender=MARIA_PHONE)

    assert clinic.sms.texts_to(MARIA_PHONE)[-1] == EN_JOINED


def test_si_gets_the_confirmation_in_spanish(clinic: Clinic) -> None:
    _invited(clinic, ROSA)

    assert clinic.text("Sí", sid=_sid(4), sender=ROSA_PHONE) == "health-tips-opt-in"

    assert clinic.sms.texts_to(ROSA_PHONE)[-1] == ES_JOINED
    assert len(clinic.health_tips_consents(ROSA)) == 1


def test_yes_without_an_invitation_goes_to_the_staff_inbox_and_consents_to_nothing(
    clinic: Clinic,
) -> None:
    _refill_notice_sent(clinic, MARIA, MARIA_PHONE)

    assert clinic.text("YES", sid=_sid(5), sender=MARIA_PHONE) == "other"

    assert clinic.inbox() == [(MARIA, "message")]
    assert clinic.replies() == ["received"]
    assert clinic.health_tips_consents(MARIA) == []
    assert clinic.ledger() == []


def _refill_notice_sent(clinic: Clinic, patient_ref: str, phone: str) -> None:
    """The last text we sent the number: a refill notice (nothing to confirm, no invitation)."""
    with transaction(clinic.runtime.sessions) as session:
        session.add(
            PlannedMessage(
                id="msg-refill-1",
                key=f"refill-notice|MedicationRequest/eMr0923|{patient_ref}",
                rule="refill-notice",
                purpose="refill-notice",
                patient_ref=patient_ref,
                about=["MedicationRequest/eMr0923"],
                send_at=clinic.clock.now - timedelta(hours=5),
                status="sent",
                template="refill-notice",
                language="en",
                variables={},
                trace={},
                channel="sms",
                address=phone,
                text="Hi Maria, a refill may be due soon. Riverside Health (555) 010-0100.",
                provider="twilio",
                provider_message_id="SM0b1c2d3e4f5061728394a5b6c7d8e9f0",
                sent_at=clinic.clock.now - timedelta(hours=5),
                communication_status="written",
                communication_id="comm-7781",
            )
        )


def test_yes_after_the_invitation_expired_is_a_reply_for_staff(clinic: Clinic) -> None:
    _invited(clinic, MARIA)
    clinic.clock.advance(days=clinic.runtime.settings.optin_invite_valid_days + 1)

    assert clinic.text("Yes", sid=_sid(7), sender=MARIA_PHONE) == "other"

    assert clinic.inbox() == [(MARIA, "message")]
    assert clinic.health_tips_consents(MARIA) == []
    assert clinic.health_tips_ledger() == []


def test_stop_after_yes_ends_the_health_tips_consent(clinic: Clinic) -> None:
    _invited(clinic, MARIA)
    clinic.text("Yes", sid=_sid(8), sender=MARIA_PHONE)
    clinic.clock.advance(days=2)

    clinic.text("STOP", sid=_sid(9), sender=MARIA_PHONE)

    (tips,) = clinic.health_tips_consents(MARIA)
    assert tips["status"] == "inactive"
    assert tips["provision"]["period"]["end"] == "2026-12-03T17:00:00Z"


def test_yes_the_same_day_after_stop_neither_opts_in_nor_resubscribes(clinic: Clinic) -> None:
    _invited(clinic, MARIA)
    clinic.text("STOP", sid=_sid(10), sender=MARIA_PHONE)
    clinic.clock.advance(hours=2)

    assert clinic.text("YES", sid=_sid(11), sender=MARIA_PHONE) == "other"

    assert clinic.health_tips_consents(MARIA) == []
    active = [c for c in clinic.consents(MARIA) if c["status"] == "active"]
    assert [c["provision"]["type"] for c in active] == ["deny"]
    assert clinic.ledger()[-1][2] == "opt-out"


def test_a_crisis_in_a_yes_is_handled_as_a_crisis_first(clinic: Clinic) -> None:
    _invited(clinic, MARIA)

    intent = clinic.text("yes but honestly I want to kill myself", sid=_sid(12), sender=MARIA_PHONE)

    assert intent == "crisis"
    assert clinic.inbox() == [(MARIA, "crisis")]
    assert clinic.health_tips_consents(MARIA) == []
    assert "988" in clinic.sms.texts_to(MARIA_PHONE)[-1]


def test_c_still_confirms_nothing_but_an_appointment(clinic: Clinic) -> None:
    _invited(clinic, MARIA)

    clinic.text("C", sid=_sid(13), sender=MARIA_PHONE)

    assert clinic.health_tips_consents(MARIA) == []
    assert clinic.health_tips_ledger() == []
