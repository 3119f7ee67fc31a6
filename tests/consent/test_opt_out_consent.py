"""Specification of the Consent resources fhir-bridge writes back to the EHR."""

from __future__ import annotations

from datetime import timedelta

import pytest
from fhirclient.models.consent import Consent

from rules.consent import (
    ConsentPolicy,
    decide_consent,
    mask_address,
    opt_in_consent,
    opt_out_consent,
)
from rules.consent.builders import UnknownChannelError
from tests.consent.fhir_fixtures import NOW, PATIENT_REF


def test_opt_out_consent_is_valid_strict_r4() -> None:
    resource = opt_out_consent(PATIENT_REF, "sms", "***0143", NOW)
    assert Consent(resource, strict=True).as_json()["provision"]["type"] == "deny"


def test_opt_in_consent_is_valid_strict_r4() -> None:
    resource = opt_in_consent(PATIENT_REF, "email", None, NOW, purposes=["health-tips"])
    assert Consent(resource, strict=True).as_json()["provision"]["type"] == "permit"


def test_opt_out_consent_is_active_patient_privacy_with_date() -> None:
    resource = opt_out_consent(PATIENT_REF, "sms", None, NOW)
    summary = (
        resource["status"],
        resource["scope"]["coding"][0]["code"],
        resource["category"][0]["coding"][0]["code"],
        resource["dateTime"],
    )
    assert summary == ("active", "patient-privacy", "59284-0", "2025-03-10T14:00:00Z")


def test_opt_out_consent_names_channel_in_provision_action() -> None:
    resource = opt_out_consent(PATIENT_REF, "email", None, NOW)
    assert resource["provision"]["action"][0]["coding"][0]["code"] == "email"


def test_opt_out_consent_without_purposes_covers_every_purpose() -> None:
    assert "purpose" not in opt_out_consent(PATIENT_REF, "sms", None, NOW)["provision"]


def test_opt_out_consent_can_be_limited_to_purposes() -> None:
    resource = opt_out_consent(PATIENT_REF, "sms", None, NOW, purposes=["refill-notice"])
    assert [c["code"] for c in resource["provision"]["purpose"]] == ["refill-notice"]


def test_written_opt_out_reads_back_as_denial() -> None:
    resource = {**opt_out_consent(PATIENT_REF, "sms", None, NOW), "id": "new-1"}
    decision = decide_consent(
        consents=[resource],
        ledger=[],
        purpose="appointment-reminder",
        channel="sms",
        now=NOW + timedelta(minutes=1),
        policy=ConsentPolicy(),
    )
    assert (decision.allowed, decision.used) == (False, ("Consent/new-1",))


def test_address_hint_travels_in_extension() -> None:
    resource = opt_out_consent(PATIENT_REF, "sms", "***0143", NOW)
    assert resource["provision"]["extension"][0]["valueString"] == "***0143"


@pytest.mark.parametrize(
    ("address", "hint"),
    [
        pytest.param("+16175550143", "***0143", id="phone-last-four"),
        pytest.param("camila.lopez@example.org", "***@example.org", id="email-domain-only"),
    ],
)
def test_mask_address_keeps_only_a_hint(address: str, hint: str) -> None:
    assert mask_address(address) == hint


def test_unknown_channel_is_rejected() -> None:
    with pytest.raises(UnknownChannelError):
        opt_out_consent(PATIENT_REF, "fax", None, NOW)
