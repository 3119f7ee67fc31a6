"""After a YES, the consent decision planning uses allows health tips by SMS for that patient
only; a patient who was invited but never answered stays "needs opt-in"."""

from __future__ import annotations

from fhir_bridge.outreach import repository as outreach
from fhir_bridge.store.db import transaction
from rules.consent import decide_consent
from rules.consent.decision import REASON_DEFAULT_DENY
from tests.optin.conftest import MARIA, MARIA_PHONE, ROSA, ROSA_PHONE, Clinic


def _health_tips_by_sms(
    clinic: Clinic, patient_ref: str, phone: str, *, with_ledger: bool = True
) -> tuple[bool, str]:
    with transaction(clinic.runtime.sessions) as session:
        rows = outreach.ledger_for(session, patient_ref, [phone]) if with_ledger else []
        ledger = [outreach.as_consent_entry(e) for e in rows]
    decision = decide_consent(
        consents=clinic.consents(patient_ref),
        ledger=ledger,
        purpose="health-tips",
        channel="sms",
        now=clinic.clock.now,
        policy=clinic.runtime.rules.consent,
        address=phone,
    )
    return decision.allowed, decision.reason


def test_health_tips_are_allowed_after_yes_and_still_denied_without_it(clinic: Clinic) -> None:
    clinic.invite(MARIA, ROSA)
    clinic.deliver_invitations()
    clinic.clock.advance(hours=1)
    clinic.text("Yes", sid="SM" + "7a" * 16, sender=MARIA_PHONE)
    clinic.clock.advance(days=3)

    assert _health_tips_by_sms(clinic, MARIA, MARIA_PHONE) == (True, "opted-in")
    assert _health_tips_by_sms(clinic, ROSA, ROSA_PHONE) == (False, REASON_DEFAULT_DENY)


def test_the_ehr_consent_alone_allows_health_tips_after_yes(clinic: Clinic) -> None:
    clinic.invite(MARIA)
    clinic.deliver_invitations()
    clinic.text("Yes", sid="SM" + "7c" * 16, sender=MARIA_PHONE)

    allowed = _health_tips_by_sms(clinic, MARIA, MARIA_PHONE, with_ledger=False)

    assert allowed == (True, "permitted-by-consent")


def test_a_general_start_does_not_allow_health_tips(clinic: Clinic) -> None:
    clinic.invite(MARIA)
    clinic.deliver_invitations()
    clinic.clock.advance(days=3)
    clinic.text("START", sid="SM" + "7b" * 16, sender=MARIA_PHONE)

    assert _health_tips_by_sms(clinic, MARIA, MARIA_PHONE) == (False, REASON_DEFAULT_DENY)
