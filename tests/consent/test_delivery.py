"""Specification of ``choose_delivery``: channel order, contact and consent together."""

from __future__ import annotations

from typing import Any

from rules.consent import ConsentPolicy, choose_delivery
from tests.consent.fhir_fixtures import MOBILE_E164, NOW, ledger_entry, load


def _choose(patient: dict[str, Any] | None, **kwargs: Any) -> Any:
    arguments: dict[str, Any] = {
        "consents": [],
        "ledger": [],
        "purpose": "appointment-reminder",
        "now": NOW,
        "policy": ConsentPolicy(),
        **kwargs,
    }
    return choose_delivery(patient=patient, **arguments)


def test_best_ranked_channel_with_consent_is_used() -> None:
    choice = _choose(load("patient-camila-lopez"))
    assert (choice.allowed, choice.channel, choice.address) == (True, "sms", MOBILE_E164)


def test_patient_telecom_rank_orders_channels() -> None:
    patient = load("patient-camila-lopez")
    patient["telecom"][1]["rank"] = 5
    assert _choose(patient).channel == "email"


def test_patient_rank_comes_before_configured_preference() -> None:
    assert _choose(load("patient-camila-lopez"), preferred_channels=["email"]).channel == "sms"


def test_configured_preference_decides_between_unranked_telecoms() -> None:
    patient = load("patient-camila-lopez")
    for telecom in patient["telecom"]:
        telecom.pop("rank", None)
    assert _choose(patient, preferred_channels=["email"]).channel == "email"


def test_sms_opt_out_falls_back_to_email() -> None:
    choice = _choose(load("patient-camila-lopez"), consents=[load("consent-sms-stop")])
    assert (choice.channel, choice.address) == ("email", "camila.lopez@example.org")


def test_fallback_records_the_consent_that_blocked_sms() -> None:
    choice = _choose(load("patient-camila-lopez"), consents=[load("consent-sms-stop")])
    assert choice.trace["attempts"][0]["used"] == ["Consent/cs-8841"]


def test_opted_out_everywhere_is_withheld_as_opted_out() -> None:
    choice = _choose(
        load("patient-camila-lopez"), ledger=[ledger_entry("921", "opt-out", channel="*")]
    )
    assert (choice.allowed, choice.reason, choice.used) == (False, "opted-out", ("ledger:921",))


def test_patient_without_telecom_is_withheld_as_no_contact() -> None:
    patient = load("patient-camila-lopez")
    patient["telecom"] = [{"system": "phone", "value": "617-555-0188", "use": "old"}]
    assert _choose(patient).reason == "no-contact"


def test_missing_patient_is_withheld_as_no_contact() -> None:
    assert _choose(None).reason == "no-contact"


def test_promotion_without_opt_in_is_withheld_as_no_consent() -> None:
    choice = _choose(load("patient-camila-lopez"), purpose="health-tips")
    assert (choice.allowed, choice.reason) == (False, "no-consent")


def test_promotion_goes_to_the_channel_the_patient_opted_into() -> None:
    choice = _choose(
        load("patient-camila-lopez"),
        purpose="health-tips",
        consents=[load("consent-health-tips-email-optin")],
    )
    assert (choice.channel, choice.used) == ("email", ("Consent/48213",))


def test_pending_double_opt_in_is_withheld_as_pending() -> None:
    patient = load("patient-camila-lopez")
    patient["telecom"] = [patient["telecom"][1]]
    choice = _choose(
        patient,
        ledger=[ledger_entry("922", "opt-in-pending", source="staff")],
        policy=ConsentPolicy(sms_double_opt_in=True),
    )
    assert choice.reason == "opt-in-pending"


def test_stop_from_old_number_does_not_block_current_mobile() -> None:
    choice = _choose(
        load("patient-camila-lopez"),
        ledger=[ledger_entry("923", "opt-out", address="+16175550188")],
    )
    assert (choice.channel, choice.address) == ("sms", MOBILE_E164)


def test_channels_outside_policy_order_are_never_tried() -> None:
    choice = _choose(
        load("patient-camila-lopez"),
        preferred_channels=["voice"],
        policy=ConsentPolicy(channel_order=("email",)),
    )
    assert choice.channel == "email"


def test_delivery_trace_holds_no_contact_values() -> None:
    choice = _choose(load("patient-camila-lopez"), consents=[load("consent-sms-stop")])
    assert "555" not in repr(choice.trace) and "example.org" not in repr(choice.trace)
